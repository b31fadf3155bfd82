//! Segment maps as data: ordered rules over RFM scores, first match wins. Shipped presets (the R `rfm`
//! v0.3.0 map with an explicit catch-all, the R x F grid, the Chinese 8-class high/low scheme) and user
//! maps (TOML). Every map is validated at load as a partition of its score cube: a segment that can never
//! fire, or a cell no segment covers, is an error naming it. Assignment and the per-segment summary are
//! LazyFrame transforms.

use std::path::Path;

use anyhow::{bail, Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

/// What the rules' ranges are matched against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// R, F and M scores, 1-5 each.
    #[default]
    Rfm,
    /// R and the mean of F and M (the widely copied 11-segment table): rules use `r` and `fm`.
    RFmMean,
    /// R and F only (the 5 x 5 grid).
    Rf,
    /// Each of R, F, M high (2) or low (1) against the customers' mean (the Chinese CRM 8 classes).
    MeanSplit,
}

/// One row of a map. A missing range means any score.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    #[serde(default)]
    pub r: Option<[f64; 2]>,
    #[serde(default)]
    pub f: Option<[f64; 2]>,
    #[serde(default)]
    pub m: Option<[f64; 2]>,
    #[serde(default)]
    pub fm: Option<[f64; 2]>,
}

/// A validated segment map.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentMap {
    pub name: String,
    #[serde(default)]
    pub basis: Basis,
    pub rules: Vec<Rule>,
}

fn rule(name: &str, r: (f64, f64), f: (f64, f64), m: (f64, f64)) -> Rule {
    Rule {
        name: name.into(),
        r: Some([r.0, r.1]),
        f: Some([f.0, f.1]),
        m: Some([m.0, m.1]),
        fm: None,
    }
}

fn any(name: &str) -> Rule {
    Rule {
        name: name.into(),
        r: None,
        f: None,
        m: None,
        fm: None,
    }
}

pub const PRESETS: [&str; 3] = ["rfm", "rf-grid", "cn8"];

impl SegmentMap {
    /// A shipped preset by name.
    pub fn preset(name: &str) -> Result<SegmentMap> {
        let map = match name {
            // R `rfm` v0.3.0 `rfm_segment` defaults, in its order; its unmatched cells become an explicit Others.
            "rfm" => SegmentMap {
                name: "rfm".into(),
                basis: Basis::Rfm,
                rules: vec![
                    rule("Champions", (5., 5.), (5., 5.), (5., 5.)),
                    rule("Potential Loyalist", (3., 5.), (3., 5.), (2., 5.)),
                    rule("Loyal Customers", (2., 4.), (2., 4.), (2., 4.)),
                    rule("Promising", (3., 4.), (1., 3.), (3., 5.)),
                    rule("New Customers", (4., 5.), (1., 3.), (1., 5.)),
                    rule("Can't Lose Them", (1., 2.), (3., 4.), (4., 5.)),
                    rule("At Risk", (1., 2.), (2., 5.), (4., 5.)),
                    rule("Need Attention", (1., 3.), (3., 5.), (3., 5.)),
                    rule("About To Sleep", (2., 3.), (1., 3.), (1., 4.)),
                    rule("Lost", (1., 1.), (1., 5.), (1., 5.)),
                    any("Others"),
                ],
            },
            "rf-grid" => {
                let rf = |name: &str, r: (f64, f64), f: (f64, f64)| Rule {
                    name: name.into(),
                    r: Some([r.0, r.1]),
                    f: Some([f.0, f.1]),
                    m: None,
                    fm: None,
                };
                SegmentMap {
                    name: "rf-grid".into(),
                    basis: Basis::Rf,
                    rules: vec![
                        rf("Champions", (5., 5.), (4., 5.)),
                        rf("Loyal Customers", (3., 4.), (4., 5.)),
                        rf("Potential Loyalists", (4., 5.), (2., 3.)),
                        rf("New Customers", (5., 5.), (1., 1.)),
                        rf("Promising", (4., 4.), (1., 1.)),
                        rf("Need Attention", (3., 3.), (3., 3.)),
                        rf("About To Sleep", (3., 3.), (1., 2.)),
                        rf("Can't Lose Them", (1., 2.), (5., 5.)),
                        rf("At Risk", (1., 2.), (3., 4.)),
                        rf("Hibernating", (1., 2.), (1., 2.)),
                    ],
                }
            }
            "cn8" => {
                let hl = |name: &str, r: f64, f: f64, m: f64| rule(name, (r, r), (f, f), (m, m));
                SegmentMap {
                    name: "cn8".into(),
                    basis: Basis::MeanSplit,
                    rules: vec![
                        hl("重要价值客户", 2., 2., 2.),
                        hl("重要发展客户", 2., 1., 2.),
                        hl("重要保持客户", 1., 2., 2.),
                        hl("重要挽留客户", 1., 1., 2.),
                        hl("一般价值客户", 2., 2., 1.),
                        hl("一般发展客户", 2., 1., 1.),
                        hl("一般保持客户", 1., 2., 1.),
                        hl("一般挽留客户", 1., 1., 1.),
                    ],
                }
            }
            other => bail!("unknown segment preset `{other}` (presets: {})", PRESETS.join(", ")),
        };
        map.validate()?;
        Ok(map)
    }

    /// A preset name, or a TOML file with `name`, `basis` and `[[rules]]`.
    pub fn load(spec: &str) -> Result<SegmentMap> {
        if PRESETS.contains(&spec) {
            return Self::preset(spec);
        }
        let path = Path::new(spec);
        if !path.exists() {
            bail!(
                "--segments `{spec}` is neither a preset ({}) nor a file",
                PRESETS.join(", ")
            );
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("reading segment map {}", path.display()))?;
        let mut map: SegmentMap =
            toml::from_str(&text).with_context(|| format!("segment map {} is not valid", path.display()))?;
        if map.name.is_empty() {
            map.name = path.display().to_string();
        }
        map.validate()
            .with_context(|| format!("segment map {}", path.display()))?;
        Ok(map)
    }

    /// The score cells of this map's cube, as (r, f, m).
    fn cells(&self) -> Vec<(f64, f64, f64)> {
        let (rs, fs, ms): (Vec<f64>, Vec<f64>, Vec<f64>) = match self.basis {
            Basis::Rfm | Basis::RFmMean => (
                (1..=5).map(f64::from).collect(),
                (1..=5).map(f64::from).collect(),
                (1..=5).map(f64::from).collect(),
            ),
            Basis::Rf => (
                (1..=5).map(f64::from).collect(),
                (1..=5).map(f64::from).collect(),
                vec![1.0],
            ),
            Basis::MeanSplit => (vec![1.0, 2.0], vec![1.0, 2.0], vec![1.0, 2.0]),
        };
        let mut out = Vec::new();
        for &r in &rs {
            for &f in &fs {
                for &m in &ms {
                    out.push((r, f, m));
                }
            }
        }
        out
    }

    fn matches(&self, rule: &Rule, (r, f, m): (f64, f64, f64)) -> bool {
        let within = |range: &Option<[f64; 2]>, v: f64| range.is_none_or(|[lo, hi]| lo <= v && v <= hi);
        let fm = (f + m) / 2.0;
        match self.basis {
            Basis::RFmMean => within(&rule.r, r) && within(&rule.fm, fm),
            Basis::Rf => within(&rule.r, r) && within(&rule.f, f),
            Basis::Rfm | Basis::MeanSplit => within(&rule.r, r) && within(&rule.f, f) && within(&rule.m, m),
        }
    }

    /// The map must partition its score cube: every cell matched, every rule the first match somewhere.
    pub fn validate(&self) -> Result<()> {
        if self.rules.is_empty() {
            bail!("segment map `{}` has no rules", self.name);
        }
        let mut fired = vec![false; self.rules.len()];
        let mut uncovered = Vec::new();
        for cell in self.cells() {
            match self.rules.iter().position(|r| self.matches(r, cell)) {
                Some(i) => fired[i] = true,
                None => uncovered.push(cell),
            }
        }
        let never: Vec<&str> = self
            .rules
            .iter()
            .zip(&fired)
            .filter(|(_, f)| !**f)
            .map(|(r, _)| r.name.as_str())
            .collect();
        let mut problems = Vec::new();
        if !never.is_empty() {
            problems.push(format!(
                "segments that can never be assigned (shadowed by earlier rows or out of range): {}",
                never.join(", ")
            ));
        }
        if !uncovered.is_empty() {
            let show: Vec<String> = uncovered.iter().take(8).map(|&c| self.cell_name(c)).collect();
            let more = if uncovered.len() > 8 {
                format!(" and {} more", uncovered.len() - 8)
            } else {
                String::new()
            };
            problems.push(format!("score cells no segment covers: {}{more}", show.join(", ")));
        }
        if !problems.is_empty() {
            bail!(
                "segment map `{}` is not a partition of its score cube: {}",
                self.name,
                problems.join("; ")
            );
        }
        Ok(())
    }

    fn cell_name(&self, (r, f, m): (f64, f64, f64)) -> String {
        match self.basis {
            Basis::Rf => format!("R={r} F={f}"),
            Basis::RFmMean => format!("R={r} FM={}", (f + m) / 2.0),
            _ => format!("R={r} F={f} M={m}"),
        }
    }

    /// The rule each score cell falls in, `[r - 1][f - 1][m - 1]` for scores 1..=5 (M ignored by the `rf`
    /// basis); `None` for a cell no rule covers (a validated map has none). For the bases that depend on
    /// the scores alone, not on the customers' means.
    pub fn score_cube(&self) -> [[[Option<u8>; 5]; 5]; 5] {
        let mut cube = [[[None; 5]; 5]; 5];
        for (r, plane) in cube.iter_mut().enumerate() {
            for (f, row) in plane.iter_mut().enumerate() {
                for (m, cell) in row.iter_mut().enumerate() {
                    let scores = ((r + 1) as f64, (f + 1) as f64, (m + 1) as f64);
                    *cell = self
                        .rules
                        .iter()
                        .position(|rule| self.matches(rule, scores))
                        .map(|i| i as u8);
                }
            }
        }
        cube
    }

    pub fn names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// The expression assigning a segment name from r_score/f_score/m_score (or the high/low columns).
    fn assign_expr(&self) -> Expr {
        let (r, f, m) = match self.basis {
            Basis::MeanSplit => ("r_hl", "f_hl", "m_hl"),
            _ => ("r_score", "f_score", "m_score"),
        };
        let within = |c: Expr, range: &Option<[f64; 2]>| match range {
            Some([lo, hi]) => c
                .clone()
                .cast(DataType::Float64)
                .gt_eq(lit(*lo))
                .and(c.cast(DataType::Float64).lt_eq(lit(*hi))),
            None => lit(true),
        };
        let mut expr: Option<Expr> = None;
        for rule in self.rules.iter().rev() {
            let cond = match self.basis {
                Basis::RFmMean => {
                    within(col(r), &rule.r).and(within((col(f) + col(m)).cast(DataType::Float64) / lit(2.0), &rule.fm))
                }
                Basis::Rf => within(col(r), &rule.r).and(within(col(f), &rule.f)),
                _ => within(col(r), &rule.r)
                    .and(within(col(f), &rule.f))
                    .and(within(col(m), &rule.m)),
            };
            let otherwise = expr.take().unwrap_or_else(|| lit(NULL).cast(DataType::String));
            expr = Some(when(cond).then(lit(rule.name.clone())).otherwise(otherwise));
        }
        expr.expect("a validated map has rules")
    }

    /// Adds `segment` to a scored RFM table.
    pub fn assign(&self, scored: LazyFrame) -> LazyFrame {
        let scored = if self.basis == Basis::MeanSplit {
            let hl = |c: &str, higher_is_better: bool| {
                let above = col(c).cast(DataType::Float64).gt(col(c).cast(DataType::Float64).mean());
                let good = if higher_is_better {
                    above
                } else {
                    col(c).cast(DataType::Float64).lt(col(c).cast(DataType::Float64).mean())
                };
                good.cast(DataType::Int32) + lit(1i32)
            };
            scored.with_columns([
                hl("recency_days", false).alias("r_hl"),
                hl("frequency", true).alias("f_hl"),
                hl("monetary_fen", true).alias("m_hl"),
            ])
        } else {
            scored
        };
        scored.with_column(self.assign_expr().alias("segment"))
    }
}

/// Per segment: customers, share, revenue (fen), revenue share, median recency/frequency/monetary,
/// average order value (revenue per occasion), and the share of its revenue from weak (masked or
/// nickname) keys. Segments in map order, empty ones included.
pub fn summary(segmented: LazyFrame, map: &SegmentMap) -> LazyFrame {
    let order = df!(
        "segment" => map.names(),
        "order" => (0..map.rules.len() as u32).collect::<Vec<_>>(),
    )
    .expect("equal lengths")
    .lazy();
    let per = segmented.group_by([col("segment")]).agg([
        col("customer_key").count().cast(DataType::Int64).alias("customers"),
        col("monetary_fen").sum().alias("revenue_fen"),
        col("frequency").sum().alias("occasions"),
        col("recency_days").median().alias("median_recency_days"),
        col("frequency").median().alias("median_frequency"),
        col("monetary_fen").median().alias("median_monetary_fen"),
        col("monetary_fen")
            .filter(col("quality").eq(lit("weak")))
            .sum()
            .alias("weak_key_revenue_fen"),
    ]);
    order
        .left_join(per, col("segment"), col("segment"))
        .with_columns([
            col("customers").fill_null(lit(0i64)),
            col("revenue_fen").fill_null(lit(0i64)),
            col("occasions").fill_null(lit(0i64)),
        ])
        .with_columns([
            (col("customers").cast(DataType::Float64) / col("customers").sum().cast(DataType::Float64))
                .alias("customer_share"),
            (col("revenue_fen").cast(DataType::Float64) / col("revenue_fen").sum().cast(DataType::Float64))
                .alias("revenue_share"),
            (col("revenue_fen").cast(DataType::Float64) / col("occasions").cast(DataType::Float64) / lit(100.0))
                .alias("avg_order_yuan"),
            (col("weak_key_revenue_fen").cast(DataType::Float64) / col("revenue_fen").cast(DataType::Float64))
                .alias("weak_key_revenue_share"),
        ])
        .sort(["order"], SortMultipleOptions::default())
        .drop(cols(["order"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::testing::strs;

    #[test]
    fn presets_are_partitions() {
        for p in PRESETS {
            SegmentMap::preset(p).unwrap();
        }
    }

    #[test]
    fn eleven_segment_table_names_its_shadowed_segments() {
        let text = include_str!("../../tests/fixtures/segments/eleven_segments.toml");
        let map: SegmentMap = toml::from_str(text).unwrap();
        let err = map.validate().unwrap_err().to_string();
        for s in ["Recent Customers", "Promising", "Can't Lose Them", "Lost"] {
            assert!(err.contains(s), "{s} not named: {err}");
        }
        for s in ["Champions", "Loyal Customers", "Hibernating", "At Risk"] {
            assert!(
                !err.split("assigned").nth(1).unwrap_or("").contains(&format!(" {s},")),
                "{s} wrongly named: {err}"
            );
        }
    }

    #[test]
    fn gaps_are_named() {
        let map = SegmentMap {
            name: "gappy".into(),
            basis: Basis::Rf,
            rules: vec![rule("Top", (5., 5.), (1., 5.), (1., 5.))],
        };
        let err = map.validate().unwrap_err().to_string();
        assert!(err.contains("R=1 F=1") && err.contains("and 12 more"), "{err}");
    }

    #[test]
    fn assignment_follows_first_match() {
        let map = SegmentMap::preset("rfm").unwrap();
        let scored = df!(
            "customer_key" => ["a", "b", "c", "d"],
            "r_score" => [5i32, 5, 1, 5],
            "f_score" => [5i32, 4, 1, 4],
            "m_score" => [5i32, 1, 1, 5],
            "recency_days" => [1i64, 2, 300, 3],
            "frequency" => [9i64, 5, 1, 6],
            "monetary_fen" => [9000i64, 500, 100, 8000],
        )
        .unwrap()
        .lazy();
        let out = map.assign(scored).collect().unwrap();
        let seg: Vec<String> = strs(&out, "segment");
        // a: Champions; b: R5 F4 M1 falls through every row to Others; c: Lost; d: Potential Loyalist.
        assert_eq!(seg, ["Champions", "Others", "Lost", "Potential Loyalist"]);
    }

    #[test]
    fn chinese_eight_classes_split_at_the_mean() {
        let map = SegmentMap::preset("cn8").unwrap();
        // Means: recency 40, frequency 4, monetary 4000.
        let scored = df!(
            "customer_key" => ["a", "b", "c", "d"],
            "recency_days" => [10i64, 70, 10, 70],
            "frequency" => [7i64, 1, 1, 7],
            "monetary_fen" => [7000i64, 1000, 7000, 1000],
        )
        .unwrap()
        .lazy();
        let out = map.assign(scored).collect().unwrap();
        let seg: Vec<String> = strs(&out, "segment");
        assert_eq!(seg, ["重要价值客户", "一般挽留客户", "重要发展客户", "一般保持客户"]);
    }
}
