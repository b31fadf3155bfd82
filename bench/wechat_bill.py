#!/usr/bin/env python3
"""Writes one WeChat Pay merchant ALL bill of N rows (27 columns, backticks, CRLF, summary) for the ingest
memory and speed measurements: python3 bench/wechat_bill.py 1000000 /tmp/wechat_1m.csv
About 1 % of rows are refunds of an earlier payment; amounts and fees are exact so the summary matches."""
import random
import sys

n, path = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(7)
header = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
          "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,"
          "费率,订单金额,申请退款金额,费率备注")
products = ["拿铁", "美式咖啡", "燕麦拿铁", "可颂", "生椰拿铁", "三明治", "冷萃", "澳白"]


def yuan(f):
    return "%s%d.%02d" % ("-" if f < 0 else "", abs(f) // 100, abs(f) % 100)


def yuan5(m):
    return "%s%d.%05d" % ("-" if m < 0 else "", abs(m) // 100000, abs(m) % 100000)


settled_sum = refund_sum = fee_sum = order_sum = 0
with open(path, "w", encoding="utf-8", newline="") as f:
    f.write(header + "\r\n")
    paid = []
    for i in range(n):
        secs = i * 86400 * 28 // n
        day, rest = divmod(secs, 86400)
        t = "2026-10-%02d %02d:%02d:%02d" % (day + 1, rest // 3600, rest % 3600 // 60, rest % 60)
        openid = "oUpF8u%022d" % rnd.randrange(200000)
        if paid and rnd.random() < 0.01:
            tx, order, amount = paid[rnd.randrange(len(paid))]
            fee = -amount * 6
            row = [t, "wx8888888888888888", "1900000109", "0", "", tx, order, openid, "JSAPI", "REFUND", "OTHERS", "CNY",
                   "0.00", "0.00", "503%026d" % i, "R" + order, yuan(amount), "0.00", "ORIGINAL", "SUCCESS",
                   rnd.choice(products), "", yuan5(fee), "0.60%", "0.00", yuan(amount), ""]
            refund_sum += amount
            fee_sum += fee
        else:
            amount = rnd.choice([1600, 2200, 2800, 3000, 3200, 5600])
            tx, order = "42%026d" % i, "P%012d" % i
            fee = amount * 6
            row = [t, "wx8888888888888888", "1900000109", "0", "", tx, order, openid, rnd.choice(["JSAPI", "MICROPAY"]),
                   "SUCCESS", "OTHERS", "CNY", yuan(amount), "0.00", "0", "0", "0.00", "0.00", "", "",
                   rnd.choice(products), "", yuan5(fee), "0.60%", yuan(amount), "0.00", ""]
            settled_sum += amount
            order_sum += amount
            fee_sum += fee
            if len(paid) < 100000:
                paid.append((tx, order, amount))
        f.write(",".join("`" + c for c in row) + "\r\n")
    f.write("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n")
    f.write(",".join("`" + c for c in [str(n), yuan(settled_sum), yuan(refund_sum), "0.00", yuan5(fee_sum),
                                       yuan(order_sum), yuan(refund_sum)]) + "\r\n")
