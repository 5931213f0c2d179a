//! The overview: a tenant's key figures, each linking to the list behind it,
//! what needs someone, and twelve weeks of trends drawn as server-rendered
//! SVG (no script: the figures are in the page, and in a table beside it).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{ConsoleError, Layout, Viewer, render, urlencode};
use crate::AppState;
use crate::app::figures::{ROTATION_DUE_DAYS, TREND_DAYS};

/// One figure with the list it summarises.
pub struct Tile {
    /// What it counts.
    pub label: String,
    /// How many.
    pub value: i64,
    /// The filtered list behind it.
    pub href: String,
}

/// One bar of a trend chart.
pub struct Bar {
    /// Left edge.
    pub x: i64,
    /// Top edge.
    pub y: i64,
    /// Width.
    pub w: i64,
    /// Height.
    pub h: i64,
    /// The series' CSS class.
    pub class: &'static str,
    /// What it shows, for the tooltip.
    pub title: String,
}

/// A grouped bar chart of weekly counts, with the same figures as a table.
pub struct Trend {
    /// Element id.
    pub id: &'static str,
    /// Heading.
    pub title: &'static str,
    /// The series: name, CSS class, a count per week.
    pub series: Vec<(&'static str, &'static str, Vec<i64>)>,
    /// The weeks' first days (`YYYY-MM-DD`).
    pub weeks: Vec<String>,
    /// The bars.
    pub bars: Vec<Bar>,
    /// The largest weekly count.
    pub max: i64,
}

/// Chart geometry: the plot's height and one week's group width.
const PLOT_H: i64 = 120;
const GROUP_W: i64 = 40;

impl Trend {
    fn new(
        id: &'static str,
        title: &'static str,
        weeks: Vec<String>,
        series: Vec<(&'static str, &'static str, Vec<i64>)>,
    ) -> Self {
        let max = series
            .iter()
            .flat_map(|s| s.2.iter().copied())
            .max()
            .unwrap_or(0)
            .max(1);
        let bar_w = ((GROUP_W - 8) / i64::try_from(series.len().max(1)).unwrap_or(1)).max(2);
        let mut bars = Vec::new();
        for (k, (name, class, values)) in series.iter().enumerate() {
            for (w, &v) in values.iter().enumerate() {
                let h = v * PLOT_H / max;
                bars.push(Bar {
                    x: i64::try_from(w).unwrap_or(0) * GROUP_W + 4 + i64::try_from(k).unwrap_or(0) * bar_w,
                    y: PLOT_H - h,
                    w: bar_w - 1,
                    h,
                    class,
                    title: format!("{name}, week of {}: {v}", weeks.get(w).map_or("", String::as_str)),
                });
            }
        }
        Trend {
            id,
            title,
            series,
            weeks,
            bars,
            max,
        }
    }

    /// The plot's width.
    pub fn width(&self) -> i64 {
        i64::try_from(self.weeks.len()).unwrap_or(0) * GROUP_W
    }

    /// Whether every count is zero.
    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.2.iter().all(|v| *v == 0))
    }
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Page {
    layout: Layout,
    total: i64,
    by_status: Vec<Tile>,
    by_environment: Vec<Tile>,
    by_class: Vec<Tile>,
    pending_approvals: i64,
    live_leases: i64,
    live_credentials: i64,
    attention: Vec<Tile>,
    trends: Vec<Trend>,
    by_tenant: Vec<Tile>,
}

/// Tenants shown on a platform operator's overview (the busiest; the
/// portfolio page has them all).
const TENANTS_SHOWN: i64 = 10;

fn tiles(counts: BTreeMap<String, i64>, param: &str) -> Vec<Tile> {
    counts
        .into_iter()
        .map(|(k, n)| Tile {
            href: if k.is_empty() {
                "/console/agents".to_owned()
            } else {
                format!("/console/agents?{param}={}", urlencode(&k))
            },
            label: if k.is_empty() { "(none)".to_owned() } else { k },
            value: n,
        })
        .collect()
}

/// Twelve weekly buckets ending with the current week, from day counts.
fn weekly(f: &idv_store::Figures, today: i64) -> (Vec<String>, BTreeMap<String, Vec<i64>>) {
    let weeks = usize::try_from(TREND_DAYS / 7).unwrap_or(12);
    let first = today - TREND_DAYS + 1;
    let mut by_kind: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for d in &f.days {
        let w = usize::try_from((d.day - first).div_euclid(7)).unwrap_or(usize::MAX);
        if let Some(n) = by_kind
            .entry(d.kind.clone())
            .or_insert_with(|| vec![0; weeks])
            .get_mut(w)
        {
            *n += d.n;
        }
    }
    let labels = (0..weeks)
        .map(|w| {
            let day = first + i64::try_from(w).unwrap_or(0) * 7;
            idv_core::Timestamp::from_micros(day * 86_400_000_000)
                .to_rfc3339()
                .chars()
                .take(10)
                .collect()
        })
        .collect();
    (labels, by_kind)
}

/// `GET /console`.
pub async fn page(State(state): State<AppState>, v: Viewer) -> Result<Response, ConsoleError> {
    let f = crate::app::figures::tenant(&state, &v.caller).await?;
    let (mut status, mut env, mut class) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut total = 0;
    for g in &f.agents {
        total += g.count;
        *status.entry(g.status.clone()).or_insert(0) += g.count;
        *env.entry(g.environment.clone().unwrap_or_default()).or_insert(0) += g.count;
        *class.entry(g.class.clone().unwrap_or_default()).or_insert(0) += g.count;
    }
    let attention = vec![
        Tile {
            label: "credentials overdue for rotation (expired, no successor)".to_owned(),
            value: f.rotations_overdue,
            href: "/console/rotation#overdue".to_owned(),
        },
        Tile {
            label: format!("credentials due for rotation in {ROTATION_DUE_DAYS} days"),
            value: f.rotations_due,
            href: "/console/rotation#due".to_owned(),
        },
        Tile {
            label: "agents past their time to live".to_owned(),
            value: f.agents_past_ttl,
            href: "/console/agents?expired=1".to_owned(),
        },
        Tile {
            label: "webhooks failing or disabled".to_owned(),
            value: f.failing_webhooks,
            href: "/console/webhooks".to_owned(),
        },
    ];
    let today = state.clock.now().as_micros().div_euclid(86_400_000_000);
    let (weeks, mut k) = weekly(&f, today);
    let n = weeks.len();
    let mut take = |kind: &str| k.remove(kind).unwrap_or_else(|| vec![0; n]);
    let trends = if v.caller.owner_scope.is_some() {
        Vec::new()
    } else {
        vec![
            Trend::new(
                "trend-lifecycle",
                "Agents created and retired per week",
                weeks.clone(),
                vec![
                    ("created", "s-created", take("created")),
                    ("retired", "s-retired", take("retired")),
                ],
            ),
            Trend::new(
                "trend-security",
                "Security events per week",
                weeks,
                vec![
                    ("credentials compromised", "s-compromised", take("compromised")),
                    ("agents suspended", "s-suspended", take("suspended")),
                    ("decisions denied", "s-denied", take("denied")),
                ],
            ),
        ]
    };
    // A platform operator sees every tenant's total beside this one's.
    let by_tenant = if v
        .caller
        .principal
        .may(idv_core::admin_token::Permission::ManagePlatform)
    {
        crate::app::figures::largest_tenants(&state, &v.caller, TENANTS_SHOWN)
            .await?
            .into_iter()
            .map(|(_, name, n)| Tile {
                label: name,
                value: n,
                href: "/console/tenants".to_owned(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(render(&Page {
        by_tenant,
        layout: Layout::new(&v, "Overview", "/console"),
        total,
        by_status: tiles(status, "status"),
        by_environment: tiles(env, "environment"),
        by_class: tiles(class, "class"),
        pending_approvals: f.pending_approvals,
        live_leases: f.live_leases,
        live_credentials: f.live_credentials,
        attention,
        trends,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_fall_into_their_weeks_and_old_ones_are_dropped() {
        let today = 20_000;
        let first = today - TREND_DAYS + 1;
        let day = |day, kind: &str, n| idv_store::DayCount {
            day,
            kind: kind.to_owned(),
            n,
        };
        let f = idv_store::Figures {
            days: vec![
                day(first - 1, "created", 100),
                day(first, "created", 1),
                day(first + 6, "created", 2),
                day(first + 7, "created", 4),
                day(today, "denied", 8),
            ],
            ..Default::default()
        };
        let (labels, k) = weekly(&f, today);
        assert_eq!(labels.len(), 12);
        assert_eq!(k["created"][..2], [3, 4]);
        assert_eq!(k["denied"][11], 8);
        let t = Trend::new("t", "T", labels, vec![("created", "c", k["created"].clone())]);
        assert_eq!(t.max, 4);
        let tallest = t.bars.iter().find(|b| b.h == PLOT_H).unwrap();
        assert_eq!((tallest.x, tallest.y), (GROUP_W + 4, 0));
    }
}
