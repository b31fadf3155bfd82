//! `paylens.toml` and its resolution. Precedence is written once, in [`Config::resolve`]: command line >
//! environment (`PAYLENS_*`) > `paylens.toml` > built-in defaults. Unknown keys are errors naming the file
//! and key. Every field's doc comment is the README's configuration reference.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The default config file, read from the working directory when present.
pub const DEFAULT_CONFIG: &str = "paylens.toml";

/// Everything the commands need, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub store: PathBuf,
    pub inbox: PathBuf,
    pub reports: PathBuf,
    #[serde(serialize_with = "serialize_tz")]
    pub timezone: Tz,
    pub personal: PersonalRules,
    pub generic: Vec<GenericMapping>,
    pub analytics: AnalyticsSettings,
    pub restock: crate::restock::RestockSettings,
    pub targets: crate::targets::TargetSettings,
    /// Language of everything people read.
    pub language: crate::i18n::Lang,
    /// Font file for the PNG charts; `None` means the first CJK family among the system fonts.
    pub chart_font: Option<PathBuf>,
    /// Where the settings came from, for `--show-config`.
    pub config_file: Option<PathBuf>,
}

/// The file as written. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Folder of the Parquet store. Default `data/store`.
    store: Option<PathBuf>,
    /// Folder `paylens run` ingests new exports from. Default `data/inbox`.
    inbox: Option<PathBuf>,
    /// Folder reports are written under, one sub-folder per ISO week. Default `reports`.
    reports: Option<PathBuf>,
    /// IANA zone the bills' local times are in. Default `Asia/Shanghai`.
    timezone: Option<String>,
    /// Language of reports, CSV headers, segment names and messages: `zh-CN` or `en`. `--lang` wins; when
    /// neither is given, LANG decides (zh_CN.UTF-8 -> zh-CN), else English.
    language: Option<String>,
    /// Font file (.ttf, .otf, .ttc) the PNG charts are drawn with; it must cover Chinese. Default: the
    /// first of Noto Sans CJK SC, Source Han Sans SC, WenQuanYi Micro/Zen Hei, PingFang SC, Microsoft
    /// YaHei, SimHei ... found among the system fonts. Env: PAYLENS_CHART_FONT.
    chart_font: Option<PathBuf>,
    /// Which rows of a personal bill are shop sales.
    #[serde(default)]
    personal: Option<PersonalRules>,
    /// Column mappings for other platforms' CSV, POS line items and inventory snapshots.
    #[serde(default)]
    generic: Vec<GenericMapping>,
    /// Customer analytics settings.
    #[serde(default)]
    analytics: Option<AnalyticsSettings>,
    /// Restock defaults.
    #[serde(default)]
    restock: Option<crate::restock::RestockSettings>,
    /// Marketer target lists.
    #[serde(default)]
    targets: Option<crate::targets::TargetSettings>,
}

/// Customer analytics settings (`[analytics]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsSettings {
    /// Segment map: a preset (`rfm`, `rf-grid`, `cn8`) or a TOML file with `[[rules]]`.
    pub segments: String,
    /// RFM window in days; absent means all history.
    pub window_days: Option<i32>,
    /// Weeks of history for weekly KPIs, new/returning/lapsed and segment-change dates.
    pub weeks: i32,
    /// Days without a purchase after which a customer counts as lapsed.
    pub lapse_days: i32,
    /// A segment map written inline (`name`, `basis`, `[[analytics.segment_map.rules]]`); used when
    /// `--segments` is not given. Validated when the config is read.
    pub segment_map: Option<crate::analytics::segments::SegmentMap>,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        AnalyticsSettings {
            segments: "rfm".into(),
            window_days: None,
            weeks: 12,
            lapse_days: 90,
            segment_map: None,
        }
    }
}

/// Which rows of a personal (QR-code) bill count as sales.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersonalRules {
    /// WeChat `交易类型` values that are shop takings (with `收/支` = `收入`).
    pub wechat_sale_types: Vec<String>,
    /// Alipay `交易分类` values that are never sales even when `收入` (transfers, red packets).
    pub alipay_excluded_categories: Vec<String>,
}

impl Default for PersonalRules {
    fn default() -> Self {
        PersonalRules {
            wechat_sale_types: ["二维码收款", "赞赏码", "群收款"].map(String::from).to_vec(),
            alipay_excluded_categories: ["转账红包", "转账", "红包", "退款"].map(String::from).to_vec(),
        }
    }
}

/// What a generic CSV holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenericKind {
    /// Payments and refunds (one row each), like a bill.
    Payments,
    /// POS line items: merchant order no, sku, name, quantity, unit price.
    LineItems,
    /// An inventory snapshot: sku, on hand, on order, lead time, pack size, minimum order, unit cost.
    Inventory,
}

/// One or several accepted header names for a field.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderNames {
    One(String),
    Many(Vec<String>),
}

impl HeaderNames {
    pub fn names(&self) -> Vec<&str> {
        match self {
            HeaderNames::One(s) => vec![s.as_str()],
            HeaderNames::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// A mapping from a CSV's header names to paylens fields. A file matches the first mapping whose required
/// columns all appear in one header row within its first 30 lines.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericMapping {
    /// Name shown as the file's format (`generic:<name>`).
    pub name: String,
    pub kind: GenericKind,
    /// `utf-8` or `gbk`; detected from the bytes when absent.
    #[serde(default)]
    pub encoding: Option<String>,
    /// chrono format of time cells (`%Y-%m-%d %H:%M:%S`); the bill formats are tried when absent.
    #[serde(default)]
    pub time_format: Option<String>,
    /// `yuan` (default) or `fen`: the unit of money cells.
    #[serde(default)]
    pub money_unit: Option<String>,
    /// Cell values (of the `kind` column) that mark a refund row; negative amounts are refunds anyway.
    #[serde(default)]
    pub refund_values: Vec<String>,
    /// Cell values (of the `status` column) that mark a cancelled row, dropped and counted.
    #[serde(default)]
    pub cancelled_values: Vec<String>,
    /// paylens field -> header name(s). Payments: time, amount, order_id (required), merchant_order_id,
    /// customer, product, fee, kind, status, store. Line items: merchant_order_id, name, quantity,
    /// unit_price (required), sku, time. Inventory: sku, on_hand (required), name, on_order,
    /// lead_time_days, pack_size, min_order, unit_cost, snapshot_date.
    pub columns: BTreeMap<String, HeaderNames>,
}

impl GenericMapping {
    pub fn required_fields(kind: GenericKind) -> &'static [&'static str] {
        match kind {
            GenericKind::Payments => &["time", "amount", "order_id"],
            GenericKind::LineItems => &["merchant_order_id", "name", "quantity", "unit_price"],
            GenericKind::Inventory => &["sku", "on_hand"],
        }
    }

    pub fn known_fields(kind: GenericKind) -> &'static [&'static str] {
        match kind {
            GenericKind::Payments => &[
                "time",
                "amount",
                "order_id",
                "merchant_order_id",
                "customer",
                "product",
                "fee",
                "kind",
                "status",
                "store",
            ],
            GenericKind::LineItems => &["merchant_order_id", "name", "quantity", "unit_price", "sku", "time"],
            GenericKind::Inventory => &[
                "sku",
                "on_hand",
                "name",
                "on_order",
                "lead_time_days",
                "pack_size",
                "min_order",
                "unit_cost",
                "snapshot_date",
            ],
        }
    }

    fn validate(&self, file: &Path) -> Result<()> {
        for f in Self::required_fields(self.kind) {
            if !self.columns.contains_key(*f) {
                bail!(crate::tr!(
                    "config.missing_column",
                    file = file.display(),
                    mapping = self.name,
                    column = f
                ));
            }
        }
        for k in self.columns.keys() {
            if !Self::known_fields(self.kind).contains(&k.as_str()) {
                bail!(crate::tr!(
                    "config.unknown_column",
                    file = file.display(),
                    mapping = self.name,
                    key = k,
                    known = Self::known_fields(self.kind).join(", ")
                ));
            }
        }
        if let Some(e) = &self.encoding {
            if !matches!(
                e.to_ascii_lowercase().as_str(),
                "utf-8" | "utf8" | "gbk" | "gb18030" | "gb2312"
            ) {
                bail!(crate::tr!(
                    "config.bad_encoding",
                    file = file.display(),
                    mapping = self.name,
                    encoding = e
                ));
            }
        }
        if let Some(u) = &self.money_unit {
            if u != "yuan" && u != "fen" {
                bail!(crate::tr!(
                    "config.bad_money_unit",
                    file = file.display(),
                    mapping = self.name,
                    unit = u
                ));
            }
        }
        Ok(())
    }
}

/// Settings given on the command line or in the environment, which win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub store: Option<PathBuf>,
    pub inbox: Option<PathBuf>,
    pub reports: Option<PathBuf>,
    pub timezone: Option<String>,
    pub language: Option<String>,
}

impl Config {
    /// Applies command line > environment > file > defaults.
    pub fn resolve(cli: &Overrides) -> Result<Config> {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let explicit = cli.config.clone().or_else(|| env("PAYLENS_CONFIG").map(PathBuf::from));
        let (file, path) = match explicit {
            Some(p) => (read_file(&p)?, Some(p)),
            None if Path::new(DEFAULT_CONFIG).exists() => {
                let p = PathBuf::from(DEFAULT_CONFIG);
                (read_file(&p)?, Some(p))
            }
            None => (ConfigFile::default(), None),
        };
        let pick = |cli: &Option<PathBuf>, var: &str, file: Option<PathBuf>, default: &str| {
            cli.clone()
                .or_else(|| env(var).map(PathBuf::from))
                .or(file)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        let tz_name = cli
            .timezone
            .clone()
            .or_else(|| env("PAYLENS_TIMEZONE").and_then(|v| v.into_string().ok()))
            .or(file.timezone)
            .unwrap_or_else(|| "Asia/Shanghai".into());
        let timezone: Tz = tz_name
            .parse()
            .map_err(|_| anyhow::anyhow!(crate::tr!("config.bad_timezone", zone = tz_name)))?;
        let language = match cli.language.clone().or(file.language) {
            Some(text) => crate::i18n::Lang::parse(&text)
                .ok_or_else(|| anyhow::anyhow!(crate::tr!("error.bad_language", text = text)))?,
            None => crate::i18n::Lang::from_env().unwrap_or_default(),
        };
        Ok(Config {
            store: pick(&cli.store, "PAYLENS_STORE", file.store, "data/store"),
            inbox: pick(&cli.inbox, "PAYLENS_INBOX", file.inbox, "data/inbox"),
            reports: pick(&cli.reports, "PAYLENS_REPORTS", file.reports, "reports"),
            timezone,
            personal: file.personal.unwrap_or_default(),
            generic: file.generic,
            analytics: file.analytics.unwrap_or_default(),
            restock: file.restock.unwrap_or_default(),
            targets: file.targets.unwrap_or_default(),
            language,
            chart_font: env("PAYLENS_CHART_FONT").map(PathBuf::from).or(file.chart_font),
            config_file: path,
        })
    }

    /// Defaults only, rooted elsewhere (used by `demo`).
    pub fn with_store(&self, store: PathBuf) -> Config {
        Config { store, ..self.clone() }
    }
}

fn serialize_tz<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

fn read_file(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path).with_context(|| crate::tr!("config.reading", file = path.display()))?;
    let file: ConfigFile =
        toml::from_str(&text).with_context(|| crate::tr!("config.invalid", file = path.display()))?;
    for m in &file.generic {
        m.validate(path)?;
    }
    if let Some(map) = file.analytics.as_ref().and_then(|a| a.segment_map.as_ref()) {
        map.validate()
            .with_context(|| format!("{}: [analytics.segment_map]", path.display()))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors_naming_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("paylens.toml");
        std::fs::write(&p, "stor = \"x\"\n").unwrap();
        let err = format!("{:#}", read_file(&p).unwrap_err());
        assert!(err.contains("paylens.toml") && err.contains("stor"), "{err}");
    }

    #[test]
    fn an_inline_segment_map_is_validated_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("paylens.toml");
        let map = "[analytics.segment_map]\nname = \"two\"\nbasis = \"rf\"\n\
                   [[analytics.segment_map.rules]]\nname = \"Recent\"\nr = [4, 5]\n\
                   [[analytics.segment_map.rules]]\nname = \"Top\"\nr = [5, 5]\n";
        std::fs::write(&p, map).unwrap();
        let err = format!("{:#}", read_file(&p).unwrap_err());
        assert!(err.contains("Top") && err.contains("R=1 F=1"), "{err}");
        std::fs::write(&p, map.replace("r = [5, 5]", "r = [1, 3]")).unwrap();
        assert!(read_file(&p).is_ok());
    }

    #[test]
    fn generic_mapping_must_name_required_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("paylens.toml");
        std::fs::write(
            &p,
            "[[generic]]\nname = \"m\"\nkind = \"payments\"\n[generic.columns]\ntime = \"t\"\n",
        )
        .unwrap();
        let err = format!("{:#}", read_file(&p).unwrap_err());
        assert!(err.contains("amount"), "{err}");
    }
}
