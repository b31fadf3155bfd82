//! The message catalogue: every sentence, heading, label and CSV header a merchant reads, in English and
//! Simplified Chinese. The text lives in `en.toml` and `zh-CN.toml` beside this file (a translation is a
//! data change); code names a key and fills `{placeholders}`. A unit test fails when a key, or a
//! placeholder of a key, exists in one language and not the other.
//!
//! The language is chosen once per process ([`set`]) from `--lang`, `language` in paylens.toml or `LANG`
//! (see `Config::resolve`). Machine-readable outputs (Parquet column names and values, `--json` keys)
//! never go through here.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// A language paylens speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Lang {
    #[default]
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh-CN")]
    ZhCn,
}

impl Lang {
    /// A language tag or locale name: `zh-CN`, `zh_CN.UTF-8`, `zh`, `zh-Hans`, `en`, `en_US.UTF-8`, `C`.
    pub fn parse(text: &str) -> Option<Lang> {
        let tag = text
            .split(['.', '@'])
            .next()
            .unwrap_or("")
            .replace('_', "-")
            .to_ascii_lowercase();
        match tag.as_str() {
            "zh" | "zh-cn" | "zh-sg" | "zh-hans" | "zh-hans-cn" => Some(Lang::ZhCn),
            "en" | "c" | "posix" => Some(Lang::En),
            t if t.starts_with("en-") => Some(Lang::En),
            _ => None,
        }
    }

    /// The tag written in `paylens.toml` and HTML `lang`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// From the environment's locale (`LC_ALL`, `LC_MESSAGES`, `LANG`), when it names one we speak.
    pub fn from_env() -> Option<Lang> {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .next()
            .and_then(|v| Lang::parse(&v))
    }
}

static CURRENT: AtomicU8 = AtomicU8::new(0);

/// Chooses the language for the rest of the process.
pub fn set(lang: Lang) {
    CURRENT.store(lang as u8, Ordering::Relaxed);
}

/// The language chosen by [`set`] (English until then).
pub fn current() -> Lang {
    match CURRENT.load(Ordering::Relaxed) {
        1 => Lang::ZhCn,
        _ => Lang::En,
    }
}

const SOURCES: [(Lang, &str); 2] = [
    (Lang::En, include_str!("en.toml")),
    (Lang::ZhCn, include_str!("zh-CN.toml")),
];

/// Flattens nested TOML tables into `section.key` -> text.
fn flatten(prefix: &str, table: &toml::Table, out: &mut HashMap<String, String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

fn parse(source: &str) -> Result<HashMap<String, String>, toml::de::Error> {
    let table: toml::Table = toml::from_str(source)?;
    let mut out = HashMap::new();
    flatten("", &table, &mut out);
    Ok(out)
}

fn catalogue(lang: Lang) -> &'static HashMap<String, String> {
    static CATALOGUES: OnceLock<[HashMap<String, String>; 2]> = OnceLock::new();
    let all = CATALOGUES.get_or_init(|| {
        // The catalogues are compiled in and checked by the tests, so a parse error is a build defect.
        SOURCES.map(|(_, s)| parse(s).unwrap_or_default())
    });
    &all[lang as usize]
}

/// The text of `key` in `lang`; English when missing there, the key itself when missing everywhere.
pub fn text_in(lang: Lang, key: &str) -> &'static str {
    catalogue(lang)
        .get(key)
        .or_else(|| catalogue(Lang::En).get(key))
        .map(String::as_str)
        .unwrap_or_else(|| Box::leak(key.to_string().into_boxed_str()))
}

/// The text of `key` in the current language.
pub fn text(key: &str) -> &'static str {
    text_in(current(), key)
}

/// The text of `key` with each `{name}` replaced by its value.
pub fn fill(key: &str, args: &[(&str, &dyn Display)]) -> String {
    let mut s = text(key).to_string();
    for (name, value) in args {
        s = s.replace(&format!("{{{name}}}"), &value.to_string());
    }
    s
}

/// `tr!("report.the_week")` or `tr!("report.title", week = w, from = a, to = b)`.
#[macro_export]
macro_rules! tr {
    ($key:expr) => {
        $crate::i18n::text($key)
    };
    ($key:expr, $($name:ident = $value:expr),+ $(,)?) => {
        $crate::i18n::fill($key, &[$((stringify!($name), &$value as &dyn ::std::fmt::Display)),+])
    };
}

/// A translated name from one of the catalogue's value tables (`segment`, `value`), or the name itself:
/// segment names, urgency words, window labels and other values shown to people.
pub fn name(table: &str, name: &str) -> String {
    catalogue(current())
        .get(&format!("{table}.{name}"))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

/// The entry for `name` in a value table of the current language, when there is one.
pub fn lookup(table: &str, name: &str) -> Option<String> {
    catalogue(current()).get(&format!("{table}.{name}")).cloned()
}

/// A segment's name in the current language (user-defined names pass through).
pub fn segment(name: &str) -> String {
    self::name("segment", name)
}

/// Thousands separators on an integer: 1234567 -> `1,234,567`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Whole yuan as people write them: `¥12,480`, `-¥186`.
pub fn money(fen: i64) -> String {
    let yuan = (fen as f64 / 100.0).round() as i64;
    let sign = if yuan < 0 { "-" } else { "" };
    format!("{sign}¥{}", thousands(yuan.abs()))
}

/// Yuan and fen: `¥1,234.50`.
pub fn money_fen(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let a = fen.unsigned_abs();
    format!("{sign}¥{}.{:02}", thousands((a / 100) as i64), a % 100)
}

/// A weekday's short name: `Thu` / `周四`.
pub fn weekday(w: Weekday) -> &'static str {
    text(&format!("weekday.{}", w.num_days_from_monday()))
}

/// A date as the language writes it: `2026-11-22` / `2026年11月22日`.
pub fn date(d: NaiveDate) -> String {
    match current() {
        Lang::En => d.to_string(),
        Lang::ZhCn => format!("{}年{}月{}日", d.year(), d.month(), d.day()),
    }
}

/// A short date with weekday: `Thu 2026-11-26` / `11月26日（周四）`.
pub fn day(d: NaiveDate) -> String {
    match current() {
        Lang::En => format!("{} {d}", weekday(d.weekday())),
        Lang::ZhCn => format!("{}月{}日（{}）", d.month(), d.day(), weekday(d.weekday())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn placeholders(s: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = s;
        while let Some(i) = rest.find('{') {
            let Some(j) = rest[i..].find('}') else { break };
            out.insert(rest[i + 1..i + j].to_string());
            rest = &rest[i + j + 1..];
        }
        out
    }

    #[test]
    fn every_key_and_placeholder_exists_in_both_languages() {
        let cats: Vec<(Lang, HashMap<String, String>)> = SOURCES
            .iter()
            .map(|(l, s)| (*l, parse(s).unwrap_or_else(|e| panic!("{} catalogue: {e}", l.tag()))))
            .collect();
        let (en, zh) = (&cats[0].1, &cats[1].1);
        let only_en: Vec<&String> = en.keys().filter(|k| !zh.contains_key(*k)).collect();
        let only_zh: Vec<&String> = zh.keys().filter(|k| !en.contains_key(*k)).collect();
        assert!(
            only_en.is_empty() && only_zh.is_empty(),
            "only in en: {only_en:?}; only in zh-CN: {only_zh:?}"
        );
        for (k, v) in en {
            assert_eq!(placeholders(v), placeholders(&zh[k]), "placeholders of `{k}` differ");
        }
        assert!(en.len() > 100, "{} keys", en.len());
    }

    /// Every `tr!` call with a literal key in the source names a key of the catalogue (a typo would otherwise show
    /// the key itself to the user).
    #[test]
    fn every_key_the_code_uses_exists() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let en = parse(SOURCES[0].1).unwrap();
        let mut used = 0;
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, _) in text.match_indices("tr!(") {
                if text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    continue; // include_str!( and the like
                }
                let rest = text[i + 4..].trim_start();
                let Some(rest) = rest.strip_prefix('"') else { continue };
                let key = &rest[..rest.find('"').unwrap()];
                if key.contains('.') && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                    assert!(
                        en.contains_key(key),
                        "{} uses `{key}`, which the catalogue lacks",
                        f.display()
                    );
                    used += 1;
                }
            }
        }
        assert!(used > 100, "{used} keys used");
    }

    #[test]
    fn locale_names() {
        assert_eq!(Lang::parse("zh_CN.UTF-8"), Some(Lang::ZhCn));
        assert_eq!(Lang::parse("zh-Hans"), Some(Lang::ZhCn));
        assert_eq!(Lang::parse("en_US.UTF-8"), Some(Lang::En));
        assert_eq!(Lang::parse("C.UTF-8"), Some(Lang::En));
        assert_eq!(Lang::parse("fr_FR.UTF-8"), None);
    }

    #[test]
    fn money_and_dates() {
        assert_eq!(money(1_248_000), "¥12,480");
        assert_eq!(money(-18_650), "-¥187");
        assert_eq!(money(99_900), "¥999");
        assert_eq!(money_fen(123_450), "¥1,234.50");
        assert_eq!(money_fen(-5), "-¥0.05");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
        let d = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert_eq!(text_in(Lang::ZhCn, "weekday.3"), "周四");
        assert_eq!(text_in(Lang::En, "weekday.3"), "Thu");
        assert_eq!(date(d), "2026-11-26");
    }
}
