//! Marketer target lists: `reports/<ISO week>/targets/<segment>.csv`, one per segment, and
//! `moved_this_week.csv` (customers whose segment changed since last week). Each row: pseudonymous
//! customer key, the already-masked label, segment, previous segment, last purchase, occasions, spend,
//! favourite product and a suggested action per segment (`[targets.actions]` in paylens.toml, else the
//! catalogue's default in the report's language). Raw buyer ids are added only on request (`--with-contact-ids`), for upload to a coupon tool.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::analytics::transitions::NEW;
use crate::csv_out::write_csv;

/// Target list settings (`[targets]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetSettings {
    /// Segment name -> the action a marketer should take. These override the defaults for the presets'
    /// segments, which live in the message catalogue (`[action]` in src/i18n/*.toml), per language.
    pub actions: BTreeMap<String, String>,
}

impl TargetSettings {
    /// The action for a segment: the config's, else the catalogue's default in the report's language.
    pub fn action(&self, segment: &str) -> Option<String> {
        self.actions
            .get(segment)
            .cloned()
            .or_else(|| crate::i18n::lookup("action", segment))
    }
}

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// Each customer's most frequently bought product (ties: alphabetical) among payments up to `as_of`.
pub fn favourite_products(events: LazyFrame, as_of: i32) -> LazyFrame {
    favourite_products_of(
        events.filter(
            col("kind")
                .eq(lit("payment"))
                .and(col("local_date").cast(DataType::Int32).lt_eq(lit(as_of))),
        ),
    )
}

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// [`favourite_products`] of payments already chosen (columns customer_key, of any type, and product_name).
pub fn favourite_products_of(payments: LazyFrame) -> LazyFrame {
    // Count by the bill's own label first, then fold the labels into products (`拿铁等2件` -> `拿铁`) on
    // the much smaller grouped rows; the favourite is the most bought, ties alphabetical.
    let times = col("times");
    payments
        .filter(col("customer_key").is_not_null().and(col("product_name").is_not_null()))
        .group_by([col("customer_key"), col("product_name")])
        .agg([len().cast(DataType::UInt32).alias("times")])
        .with_column(crate::analytics::velocity::bill_product_key(col("product_name")).alias("product_name"))
        .group_by([col("customer_key"), col("product_name")])
        .agg([times.clone().sum().alias("times")])
        .group_by([col("customer_key")])
        .agg([col("product_name")
            .filter(times.clone().eq(times.max()))
            .min()
            .alias("favourite_product")])
}

/// A file-system-safe file name for a segment.
fn file_name(segment: &str) -> String {
    let s: String = segment
        .chars()
        .map(|c| if c.is_alphanumeric() || c > '\u{7f}' { c } else { '_' })
        .collect();
    s.trim_matches('_').to_lowercase()
}

/// Writes the lists under `folder/targets/`. `customers` is analyze's customer table with each customer's
/// `favourite_product` (null when none), ordered by segment, then key: each segment is one run of rows, and
/// the lists keep that order among equal spends. `raw_ids`, when given, maps keys to raw buyer ids (the
/// identities table).
pub fn write(
    customers: &DataFrame,
    settings: &TargetSettings,
    raw_ids: Option<DataFrame>,
    folder: &Path,
) -> Result<usize> {
    let dir = folder.join("targets");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut columns = vec![
        col("customer_key"),
        col("label"),
        col("segment"),
        col("previous_segment"),
        col("segment_since"),
        col("last_purchase"),
        col("frequency").alias("occasions"),
        col("monetary_yuan").alias("spend_yuan"),
        col("favourite_product"),
        col("suggested_action"),
    ];
    let list = match raw_ids {
        Some(ids) => {
            let mut keep_order = JoinArgs::new(JoinType::Left);
            keep_order.maintain_order = MaintainOrderJoin::Left;
            columns.push(col("raw_id").alias("contact_id"));
            customers
                .clone()
                .lazy()
                .join(
                    ids.lazy().select([col("customer_key"), col("raw_id")]),
                    [col("customer_key")],
                    [col("customer_key")],
                    keep_order,
                )
                .collect()?
        }
        None => customers.clone(),
    };
    // A list per segment (customers without one are in none), biggest spenders first (ties in key order),
    // and those who moved this week. The lists are written on two threads, the largest first.
    let runs = segment_runs(&list)?;
    let mut by_size: Vec<usize> = (0..runs.len()).collect();
    by_size.sort_by_key(|&i| std::cmp::Reverse(runs[i].2));
    let write_list = |&(segment, start, len): &(&str, usize, usize)| -> Result<DataFrame> {
        let mut part = list.slice(start as i64, len);
        let action = Column::new("suggested_action".into(), vec![settings.action(segment); len]);
        part.with_column(action)?;
        let part = part
            .lazy()
            .select(columns.clone())
            .sort(
                ["spend_yuan"],
                SortMultipleOptions::default()
                    .with_order_descending(true)
                    .with_maintain_order(true),
            )
            .collect()?;
        write_csv(&part, &dir.join(format!("{}.csv", file_name(segment))))?;
        // Those who moved this week, from this segment.
        Ok(part
            .lazy()
            .filter(
                col("previous_segment")
                    .neq(col("segment"))
                    .and(col("previous_segment").neq(lit(NEW))),
            )
            .collect()?)
    };
    // Those who moved, in segment order.
    let moved_parts = crate::on_two_threads(&runs, &by_size, "writing target lists", write_list)?;
    let files = moved_parts.len();
    let mut moved: Option<DataFrame> = None;
    for moved_here in moved_parts {
        match &mut moved {
            Some(m) => {
                m.vstack_mut_owned(moved_here)?;
            }
            None => moved = Some(moved_here),
        }
    }
    let moved = match moved {
        Some(m) => m,
        None => list
            .clear()
            .lazy()
            .with_column(lit(NULL).cast(DataType::String).alias("suggested_action"))
            .select(columns)
            .collect()?,
    };
    write_csv(&moved, &dir.join("moved_this_week.csv"))?;
    Ok(files + 1)
}

/// The runs of rows of each segment: (segment, first row, rows). Fails when a segment's rows are not in
/// one run.
fn segment_runs(list: &DataFrame) -> Result<Vec<(&str, usize, usize)>> {
    let segments = list.column("segment")?.str()?;
    let mut runs: Vec<(Option<&str>, usize, usize)> = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        match runs.last_mut() {
            Some((last, _, len)) if *last == s => *len += 1,
            _ => runs.push((s, i, 1)),
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some((s, ..)) = runs.iter().find(|(s, ..)| !seen.insert(*s)) {
        anyhow::bail!(
            "the customer table is not ordered by segment ({} in two places)",
            s.unwrap_or("none")
        );
    }
    Ok(runs
        .into_iter()
        .filter_map(|(s, start, len)| Some((s?, start, len)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_runs_of_rows() {
        let df = df!("segment" => [Some("Lost"), Some("Lost"), None, Some("New")]).unwrap();
        assert_eq!(segment_runs(&df).unwrap(), [("Lost", 0, 2), ("New", 3, 1)]);
        let scattered = df!("segment" => ["Lost", "New", "Lost"]).unwrap();
        let e = segment_runs(&scattered).unwrap_err();
        assert!(e.to_string().contains("Lost in two places"), "{e}");
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_name("Can't Lose Them"), "can_t_lose_them");
        assert_eq!(file_name("重要价值客户"), "重要价值客户");
    }

    #[test]
    fn favourite_is_the_most_bought_product() {
        let ev = df!(
            "event_id" => ["1", "2", "3", "4", "5"],
            "kind" => ["payment"; 5],
            "customer_key" => ["a", "a", "a", "b", "b"],
            "product_name" => ["拿铁", "可颂", "拿铁等2件", "美式", "可颂"],
            "local_date" => [10i32, 11, 12, 10, 11],
        )
        .unwrap()
        .lazy()
        .with_column(col("local_date").cast(DataType::Date));
        let f = favourite_products(ev, 20)
            .sort(["customer_key"], Default::default())
            .collect()
            .unwrap();
        let fav = crate::analytics::testing::strs(&f, "favourite_product");
        // a: 拿铁 twice (one bill says 拿铁等2件); b: a tie, broken alphabetically (可颂 sorts before 美式 by code point).
        assert_eq!(fav, ["拿铁", "可颂"]);
    }
}

#[cfg(test)]
mod favourite_tests {
    use super::*;

    #[test]
    fn the_most_bought_product_ties_alphabetical() {
        // a: 拿铁 twice (once as a multi-item label), 美式 once -> 拿铁. b: one each -> the first by code
        // point (拿 U+62FF before 美 U+7F8E). c: only a refund and a sale after as-of -> no favourite.
        let rows = [
            ("a", "payment", "拿铁", 10),
            ("a", "payment", "拿铁等2件", 11),
            ("a", "payment", "美式", 12),
            ("b", "payment", "美式", 10),
            ("b", "payment", "拿铁", 11),
            ("c", "refund", "拿铁", 10),
            ("c", "payment", "美式", 99),
        ];
        let df = df!(
            "event_id" => (0..rows.len()).map(|i| format!("e{i}")).collect::<Vec<_>>(),
            "customer_key" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "kind" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "product_name" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            "local_date" => rows.iter().map(|r| r.3).collect::<Vec<i32>>(),
        )
        .unwrap()
        .lazy()
        .with_column(col("local_date").cast(DataType::Date));
        let fav = favourite_products(df, 50)
            .sort(["customer_key"], SortMultipleOptions::default())
            .collect()
            .unwrap();
        let get = |c: &str| -> Vec<Option<String>> {
            fav.column(c)
                .unwrap()
                .str()
                .unwrap()
                .iter()
                .map(|v| v.map(str::to_string))
                .collect()
        };
        assert_eq!(get("customer_key"), [Some("a".into()), Some("b".into())]);
        assert_eq!(get("favourite_product"), [Some("拿铁".into()), Some("拿铁".into())]);
    }
}
