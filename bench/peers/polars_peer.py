"""The Python Polars peer: the same work as duckdb_peer.py, written as a data engineer would in a notebook.

    polars_peer.py ingest INBOX WORK      bills -> WORK/events.parquet (zstd)
    polars_peer.py report WORK AS_OF      events.parquet -> RFM, monthly cohorts, velocity (WORK/polars_*.parquet)

Threads: POLARS_MAX_THREADS (set by bench/run).
"""

import datetime as dt
import os
import sys

import polars as pl

from common import NOT_PRODUCTS, RFM_SEGMENTS, transcode_alipay, wechat_files


def t(name):
    return pl.col(name).str.strip_chars("`\t ")


def fen(name):
    return (t(name).cast(pl.Decimal(18, 2)) * 100).cast(pl.Int64)


def ingest(inbox, work):
    alipay = transcode_alipay(inbox, os.path.join(work, "alipay_utf8"))
    wx = pl.concat(
        [pl.scan_csv(f, infer_schema=False, truncate_ragged_lines=True, missing_columns="insert") for f in wechat_files(inbox)],
        how="vertical_relaxed",
    )
    ts = t("交易时间").str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)
    refund = t("交易状态") == "REFUND"
    wx_events = (
        wx.with_columns(ts.alias("occurred_local"), t("交易状态").alias("status"))
        .filter(pl.col("occurred_local").is_not_null() & pl.col("status").is_in(["SUCCESS", "REFUND"]))
        .select(
            pl.when(refund)
            .then(pl.concat_str([pl.lit("wx:"), t("微信订单号"), pl.lit(":refund:"), t("微信退款单号")]))
            .otherwise(pl.concat_str([pl.lit("wx:"), t("微信订单号")]))
            .alias("event_id"),
            pl.when(refund).then(pl.lit("refund")).otherwise(pl.lit("payment")).alias("kind"),
            "occurred_local",
            pl.when(refund).then(-fen("退款金额")).otherwise(fen("订单金额")).alias("amount_fen"),
            pl.when(refund).then(pl.concat_str([pl.lit("wx:"), t("微信订单号")])).alias("payment_event_id"),
            pl.when(t("用户标识") != "")
            .then(pl.concat_str([pl.lit("wechat:"), t("公众账号ID"), pl.lit("/"), t("用户标识")]))
            .alias("customer"),
            pl.when(t("商品名称") != "").then(t("商品名称")).alias("product_name"),
            pl.lit("wechat_pay").alias("channel"),
        )
    )
    if not alipay:  # WeChat bills alone (the calibration bill)
        return write_events(wx_events, work)
    ali = pl.concat([pl.scan_csv(f, infer_schema=False) for f in alipay], how="vertical_relaxed")
    done = t("完成时间")
    ali_ts = pl.when(done != "").then(done).otherwise(t("创建时间")).str.strptime(
        pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False
    )
    is_refund = t("业务类型") == "退款"
    ali_events = (
        ali.filter(t("业务类型").is_in(["交易", "退款"]))
        .with_columns(ali_ts.alias("occurred_local"))
        .filter(pl.col("occurred_local").is_not_null())
        .select(
            pl.when(is_refund)
            .then(pl.concat_str([pl.lit("alipay:"), t("支付宝交易号"), pl.lit(":refund:"), t("退款批次号/请求号")]))
            .otherwise(pl.concat_str([pl.lit("alipay:"), t("支付宝交易号")]))
            .alias("event_id"),
            pl.when(is_refund).then(pl.lit("refund")).otherwise(pl.lit("payment")).alias("kind"),
            "occurred_local",
            pl.when(is_refund).then(-fen("订单金额（元）").abs()).otherwise(fen("订单金额（元）")).alias("amount_fen"),
            pl.when(is_refund).then(pl.concat_str([pl.lit("alipay:"), t("支付宝交易号")])).alias("payment_event_id"),
            pl.when(t("对方账户") != "")
            .then(pl.concat_str([pl.lit("alipay_masked:"), t("对方账户")]))
            .alias("customer"),
            pl.when(t("商品名称") != "").then(t("商品名称")).alias("product_name"),
            pl.lit("alipay").alias("channel"),
        )
    )
    write_events(pl.concat([wx_events, ali_events]), work)


def write_events(events, work):
    events = events.unique(subset=["event_id"], keep="first", maintain_order=False).with_columns(
        pl.col("occurred_local").dt.date().alias("local_date")
    )
    out = os.path.join(work, "events.parquet")
    events.sink_parquet(out, compression="zstd")
    print("polars ingest:", pl.scan_parquet(out).select(pl.len()).collect().item(), "events")


def report(work, as_of):
    as_of = dt.date.fromisoformat(as_of)
    ev = pl.scan_parquet(os.path.join(work, "events.parquet")).filter(pl.col("local_date") <= as_of)
    refunds = (
        ev.filter(pl.col("kind") == "refund")
        .group_by("payment_event_id")
        .agg(pl.col("amount_fen").sum().alias("refunded"), pl.col("local_date").max().alias("refund_day"))
    )
    pay = (
        ev.filter(pl.col("kind") == "payment")
        .join(refunds, left_on="event_id", right_on="payment_event_id", how="left")
        .with_columns(pl.col("refunded").fill_null(0))
    ).collect().lazy()
    occ = (
        pay.filter(pl.col("customer").is_not_null() & (pl.col("amount_fen") + pl.col("refunded") > 0))
        .group_by("customer", pl.col("local_date").alias("d"))
        .agg((pl.col("amount_fen") + pl.col("refunded")).sum().alias("net"))
    ).collect()
    rfm = occ.group_by("customer").agg(
        (pl.lit(as_of) - pl.col("d").max()).dt.total_days().alias("recency"),
        pl.len().alias("freq"),
        pl.col("net").sum().alias("monetary"),
    )

    def cuts(name):
        qs = [round(rfm[name].cast(pl.Float64).quantile(q, "linear"), 6) for q in (0.2, 0.4, 0.6, 0.8)]
        out = []
        for q in qs:
            if not out or out[-1] != q:
                out.append(q)
        return out

    rc, fc, mc = cuts("recency"), cuts("freq"), cuts("monetary")
    above = lambda name, cs: pl.sum_horizontal([(pl.col(name) > c).cast(pl.Int32) for c in cs])
    scored = rfm.with_columns(
        (len(rc) + 1 - above("recency", rc)).alias("r"),
        (1 + above("freq", fc)).alias("f"),
        (1 + above("monetary", mc)).alias("m"),
    )
    seg = pl.lit("Others")
    for name, r, f, m in reversed(RFM_SEGMENTS):
        cond = pl.col("r").is_between(*r) & pl.col("f").is_between(*f) & pl.col("m").is_between(*m)
        seg = pl.when(cond).then(pl.lit(name)).otherwise(seg)
    segments = scored.with_columns(seg.alias("segment"))
    month = lambda c: pl.col(c).dt.year() * 12 + pl.col(c).dt.month() - 1
    first = occ.group_by("customer").agg(pl.col("d").min().alias("f"))
    c = occ.join(first, on="customer").with_columns(month("f").alias("cohort"), (month("d") - month("f")).alias("k"))
    size = c.filter(pl.col("k") == 0).group_by("cohort").agg(pl.col("customer").n_unique().alias("n"))
    cohorts = (
        c.group_by("cohort", "k")
        .agg(pl.col("customer").n_unique().alias("back"))
        .join(size, on="cohort")
        .select("cohort", "k", (pl.col("back") / pl.col("n")).alias("retention"))
    )
    sold = (
        pay.filter(pl.col("product_name").is_not_null())
        .select(
            pl.col("product_name").str.replace(r"等[0-9]+件$", "").str.strip_chars().alias("product"),
            pl.col("local_date").alias("d"),
            pl.lit(1.0).alias("units"),
            ((pl.col("amount_fen") + pl.col("refunded")) <= 0).alias("returned"),
            "refund_day",
        )
    )
    moves = pl.concat(
        [
            sold.select("product", "d", "units"),
            sold.filter("returned").select("product", pl.col("refund_day").alias("d"), -pl.col("units")),
        ]
    ).filter(~pl.col("product").is_in(NOT_PRODUCTS))
    window = lambda days: (pl.col("units").filter(pl.col("d") > as_of - dt.timedelta(days=days)).sum() / days)
    velocity = moves.group_by("product").agg(window(7).alias("v7"), window(28).alias("v28"), window(90).alias("v90"))
    segments.write_parquet(os.path.join(work, "polars_segments.parquet"))
    cohorts.write_parquet(os.path.join(work, "polars_cohorts.parquet"))
    velocity.collect().write_parquet(os.path.join(work, "polars_velocity.parquet"))
    print("polars report:", segments.height, "customers")


if __name__ == "__main__":
    if sys.argv[1] == "ingest":
        ingest(sys.argv[2], sys.argv[3])
    else:
        report(sys.argv[2], sys.argv[3])
