"""What both peers share: finding the bills and making them readable by a CSV reader.

The benchmark input is the demo's merchant bills: WeChat Pay merchant trade bills (UTF-8, one per day,
every cell prefixed with a backtick, two summary lines at the end) and Alipay merchant 业务明细 exports
(monthly .csv.zip, GBK, entry names in GBK without the UTF-8 flag, `#` preamble and trailer lines, cells
padded with TABs, plus a (汇总) summary entry). The peers transcode the Alipay entries to UTF-8 files first
(the issue allows this; its time counts in the peer's ingest) and read the WeChat bills as they are.
"""

import glob
import os
import zipfile


def wechat_files(inbox):
    return sorted(glob.glob(os.path.join(inbox, "wechat_merchant", "*.csv")))


def alipay_zips(inbox):
    return sorted(glob.glob(os.path.join(inbox, "alipay_merchant", "*.zip")))


def entry_name(info):
    """The real name of a zip entry: GBK bytes that Python decoded as cp437 when the UTF-8 flag is unset."""
    if info.flag_bits & 0x800:
        return info.filename
    return info.filename.encode("cp437").decode("gbk", errors="replace")


def transcode_alipay(inbox, out_dir):
    """Writes each Alipay detail entry as UTF-8 without the `#` lines; returns the file paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for z in alipay_zips(inbox):
        with zipfile.ZipFile(z) as zf:
            for info in zf.infolist():
                if "汇总" in entry_name(info):
                    continue
                text = zf.read(info).decode("gb18030")
                lines = [l for l in text.splitlines() if l and not l.startswith("#")]
                path = os.path.join(out_dir, os.path.basename(z).replace(".csv.zip", ".csv"))
                with open(path, "w", encoding="utf-8") as f:
                    f.write("\n".join(lines))
                    f.write("\n")
                paths.append(path)
    return paths


# Product labels that are not products (personal QR code takings), as paylens's velocity skips them.
NOT_PRODUCTS = ["收钱码收款", "二维码收款", "收款", "转账"]

RFM_SEGMENTS = [
    # (name, r range, f range, m range), first match wins: paylens's `rfm` preset.
    ("Champions", (5, 5), (5, 5), (5, 5)),
    ("Potential Loyalist", (3, 5), (3, 5), (2, 5)),
    ("Loyal Customers", (2, 4), (2, 4), (2, 4)),
    ("Promising", (3, 4), (1, 3), (3, 5)),
    ("New Customers", (4, 5), (1, 3), (1, 5)),
    ("Can't Lose Them", (1, 2), (3, 4), (4, 5)),
    ("At Risk", (1, 2), (2, 5), (4, 5)),
    ("Need Attention", (1, 3), (3, 5), (3, 5)),
    ("About To Sleep", (2, 3), (1, 3), (1, 4)),
    ("Lost", (1, 1), (1, 5), (1, 5)),
]
