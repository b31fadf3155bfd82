"""The DuckDB peer: what a data engineer would write in SQL instead of running paylens.

    duckdb_peer.py ingest INBOX WORK      bills -> WORK/events.parquet (zstd)
    duckdb_peer.py report WORK AS_OF      events.parquet -> RFM scores and segments, the monthly cohort
                                          triangle, per-product velocity (WORK/duckdb_*.parquet)

Threads: PEER_THREADS (default 2). The logic follows paylens's definitions (bench/README.md): payments and
refunds linked by platform transaction id, occasions = net-positive customer-days, type-7 quantile cut
points, the `rfm` segment table, units from bill product names without the 等N件 suffix.
"""

import os
import sys

import duckdb

from common import NOT_PRODUCTS, RFM_SEGMENTS, transcode_alipay, wechat_files


def connect():
    return duckdb.connect(config={"threads": int(os.environ.get("PEER_THREADS", "2"))})


def fen(col):
    return f"cast(round(cast(trim({col}, '`\t ') as decimal(18, 2)) * 100) as bigint)"


def ingest(inbox, work):
    con = connect()
    alipay = transcode_alipay(inbox, os.path.join(work, "alipay_utf8"))
    wx = wechat_files(inbox)
    files = lambda paths: "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
    con.execute(
        f"create view wx as select * from read_csv({files(wx)}, all_varchar = true, header = true, "
        "null_padding = true)"
    )
    if alipay:
        con.execute(
            f"create view ali as select * from read_csv({files(alipay)}, all_varchar = true, header = true, "
            "null_padding = true)"
        )
    else:  # WeChat bills alone (the calibration bill): no rows, the columns the query names
        columns = ["支付宝交易号", "业务类型", "退款批次号/请求号", "完成时间", "创建时间", "订单金额（元）", "对方账户", "商品名称"]
        con.execute("create view ali as select " + ", ".join(f"''::varchar \"{c}\"" for c in columns) + " where false")
    t = lambda c: f"trim({c}, '`\t ')"
    con.execute(f"""
    create table events as
    with w as (
      select try_strptime({t('交易时间')}, '%Y-%m-%d %H:%M:%S') ts, {t('交易状态')} status,
             {t('微信订单号')} tx, {t('微信退款单号')} refund_no, {t('公众账号ID')} appid, {t('用户标识')} openid,
             {t('商品名称')} product, {fen('订单金额')} amount, {fen('退款金额')} refund_amount
      from wx),
    wx_events as (
      select case when status = 'REFUND' then 'wx:' || tx || ':refund:' || refund_no else 'wx:' || tx end event_id,
             case when status = 'REFUND' then 'refund' else 'payment' end kind,
             ts occurred_local,
             case when status = 'REFUND' then -refund_amount else amount end amount_fen,
             case when status = 'REFUND' then 'wx:' || tx end payment_event_id,
             case when openid <> '' then 'wechat:' || appid || '/' || openid end customer,
             nullif(product, '') product_name, 'wechat_pay' channel
      from w where ts is not null and status in ('SUCCESS', 'REFUND')),
    a as (
      select {t('支付宝交易号')} tx, {t('业务类型')} kind, {t('"退款批次号/请求号"')} refund_no,
             try_strptime(coalesce(nullif({t('完成时间')}, ''), {t('创建时间')}), '%Y-%m-%d %H:%M:%S') ts,
             {fen('"订单金额（元）"')} amount, {t('对方账户')} account, {t('商品名称')} product
      from ali),
    ali_events as (
      select case when kind = '退款' then 'alipay:' || tx || ':refund:' || refund_no else 'alipay:' || tx end
               event_id,
             case when kind = '退款' then 'refund' else 'payment' end kind,
             ts occurred_local,
             case when kind = '退款' then -abs(amount) else amount end amount_fen,
             case when kind = '退款' then 'alipay:' || tx end payment_event_id,
             case when account <> '' then 'alipay_masked:' || account end customer,
             nullif(product, '') product_name, 'alipay' channel
      from a where kind in ('交易', '退款') and ts is not null)
    select distinct on (event_id) *, cast(occurred_local as date) local_date
    from (select * from wx_events union all by name select * from ali_events)
    """)
    con.execute(
        f"copy events to '{os.path.join(work, 'events.parquet')}' (format parquet, compression zstd)"
    )
    n = con.execute("select count(*) from events").fetchone()[0]
    print(f"duckdb ingest: {n} events")


def report(work, as_of):
    con = connect()
    ev = os.path.join(work, "events.parquet")
    rules = " ".join(
        f"when r between {r[0]} and {r[1]} and f between {f[0]} and {f[1]} and m between {m[0]} and {m[1]} "
        f"then '{name.replace(chr(39), chr(39) * 2)}'"
        for name, r, f, m in RFM_SEGMENTS
    )
    not_products = ", ".join(f"'{p}'" for p in NOT_PRODUCTS)
    con.execute(f"""
    create table ev as select * from read_parquet('{ev}') where local_date <= DATE '{as_of}';
    create table refunds as select payment_event_id, sum(amount_fen) refunded, max(local_date) refund_day
      from ev where kind = 'refund' group by 1;
    create table pay as select p.*, coalesce(r.refunded, 0) refunded, r.refund_day
      from ev p left join refunds r on r.payment_event_id = p.event_id where p.kind = 'payment';
    create table occ as select customer, local_date d, sum(amount_fen + refunded) net
      from pay where customer is not null and amount_fen + refunded > 0 group by 1, 2;
    create table rfm as select customer, (DATE '{as_of}' - max(d)) recency, count(*) freq, sum(net) monetary
      from occ group by 1;
    create table cuts as select
      list_distinct([round(x, 6) for x in quantile_cont(recency, [0.2, 0.4, 0.6, 0.8])]) rc,
      list_distinct([round(x, 6) for x in quantile_cont(freq, [0.2, 0.4, 0.6, 0.8])]) fc,
      list_distinct([round(x, 6) for x in quantile_cont(monetary, [0.2, 0.4, 0.6, 0.8])]) mc from rfm;
    create table scored as select customer, recency, freq, monetary,
      len(rc) + 1 - len(list_filter(rc, lambda c: recency > c)) r,
      1 + len(list_filter(fc, lambda c: freq > c)) f,
      1 + len(list_filter(mc, lambda c: monetary > c)) m
      from rfm, cuts;
    create table segments as select *, case {rules} else 'Others' end segment from scored;
    create table cohorts as
      with first as (select customer, min(d) f from occ group by 1),
           c as (select o.customer, year(f) * 12 + month(f) - 1 cohort,
                        (year(o.d) * 12 + month(o.d)) - (year(f) * 12 + month(f)) k
                 from occ o join first using (customer)),
           size as (select cohort, count(distinct customer) n from c where k = 0 group by 1)
      select cohort, k, count(distinct customer) / any_value(size.n) retention
      from c join size using (cohort) group by 1, 2;
    create table velocity as
      with sold as (
        select trim(regexp_replace(product_name, '等[0-9]+件$', '')) product, local_date d, 1.0 units,
               amount_fen + refunded <= 0 returned, refund_day
        from pay where product_name is not null),
      moves as (
        select product, d, units from sold
        union all select product, refund_day, -units from sold where returned)
      select product,
        sum(units) filter (where d > DATE '{as_of}' - 7) / 7 v7,
        sum(units) filter (where d > DATE '{as_of}' - 28) / 28 v28,
        sum(units) filter (where d > DATE '{as_of}' - 90) / 90 v90
      from moves where product not in ({not_products}) group by 1;
    """)
    for table in ["segments", "cohorts", "velocity"]:
        con.execute(f"copy {table} to '{os.path.join(work, 'duckdb_' + table + '.parquet')}' (format parquet)")
    print("duckdb report:", con.execute("select count(*) from segments").fetchone()[0], "customers")


if __name__ == "__main__":
    if sys.argv[1] == "ingest":
        ingest(sys.argv[2], sys.argv[3])
    else:
        report(sys.argv[2], sys.argv[3])
