//! The return-on-investment calculator: what automating agent identity
//! governance saves a year, from a few inputs. Pure arithmetic; the console
//! pre-fills what the live system knows.

/// The calculator's inputs. The defaults are the product sheet's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Inputs {
    /// Agent identities managed.
    pub agents: f64,
    /// What manual access reviews cost a year today.
    pub review_cost_manual: f64,
    /// What they cost a year with automated campaigns.
    pub review_cost_automated: f64,
    /// Hours a week spent managing agent credentials by hand.
    pub credential_hours_per_week: f64,
    /// The loaded cost of an hour of that work.
    pub hourly_cost: f64,
    /// The share of that time automation saves (0–1).
    pub credential_time_saved: f64,
    /// Security incidents avoided a year.
    pub incidents_avoided: f64,
    /// The average cost of one.
    pub incident_cost: f64,
    /// What IdentityVault costs a year.
    pub annual_cost: f64,
}

impl Default for Inputs {
    fn default() -> Self {
        Self {
            agents: 0.0,
            review_cost_manual: 200_000.0,
            review_cost_automated: 50_000.0,
            credential_hours_per_week: 20.0,
            hourly_cost: 120.0,
            credential_time_saved: 0.8,
            incidents_avoided: 1.0,
            incident_cost: 100_000.0,
            annual_cost: 120_000.0,
        }
    }
}

/// What the inputs come to, a year.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// Saved on access reviews.
    pub reviews: f64,
    /// Saved on credential management.
    pub credentials: f64,
    /// Incidents avoided, valued.
    pub incidents: f64,
    /// All savings.
    pub total: f64,
    /// Savings less the annual cost.
    pub net: f64,
    /// Net over cost, as a percentage (`None` when the cost is zero).
    pub roi_percent: Option<f64>,
    /// Months of savings that pay for a year (`None` when nothing is saved).
    pub payback_months: Option<f64>,
}

/// Why an input was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {reason}")]
pub struct InputError {
    /// Which input.
    pub field: &'static str,
    /// Why.
    pub reason: &'static str,
}

impl Inputs {
    /// Refuses negative, non-finite or absurd values.
    pub fn check(&self) -> Result<(), InputError> {
        let fields = [
            ("agents", self.agents),
            ("review_cost_manual", self.review_cost_manual),
            ("review_cost_automated", self.review_cost_automated),
            ("credential_hours_per_week", self.credential_hours_per_week),
            ("hourly_cost", self.hourly_cost),
            ("credential_time_saved", self.credential_time_saved),
            ("incidents_avoided", self.incidents_avoided),
            ("incident_cost", self.incident_cost),
            ("annual_cost", self.annual_cost),
        ];
        for (field, v) in fields {
            if !v.is_finite() || v < 0.0 {
                return Err(InputError {
                    field,
                    reason: "must be a number, zero or more",
                });
            }
            if v > 1e12 {
                return Err(InputError {
                    field,
                    reason: "is too large",
                });
            }
        }
        if self.credential_time_saved > 1.0 {
            return Err(InputError {
                field: "credential_time_saved",
                reason: "is a share: at most 1 (100 %)",
            });
        }
        if self.credential_hours_per_week > 168.0 {
            return Err(InputError {
                field: "credential_hours_per_week",
                reason: "a week has 168 hours",
            });
        }
        Ok(())
    }

    /// The yearly outcome.
    pub fn outcome(&self) -> Outcome {
        let reviews = (self.review_cost_manual - self.review_cost_automated).max(0.0);
        let credentials = self.credential_hours_per_week * 52.0 * self.hourly_cost * self.credential_time_saved;
        let incidents = self.incidents_avoided * self.incident_cost;
        let total = reviews + credentials + incidents;
        let net = total - self.annual_cost;
        Outcome {
            reviews,
            credentials,
            incidents,
            total,
            net,
            roi_percent: (self.annual_cost > 0.0).then(|| net / self.annual_cost * 100.0),
            payback_months: (total > 0.0).then(|| self.annual_cost / (total / 12.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_sheet_defaults() {
        let o = Inputs::default().outcome();
        assert_eq!(o.reviews, 150_000.0);
        assert_eq!(o.credentials, 20.0 * 52.0 * 120.0 * 0.8);
        assert_eq!(o.incidents, 100_000.0);
        assert_eq!(o.total, 150_000.0 + 99_840.0 + 100_000.0);
        assert_eq!(o.net, o.total - 120_000.0);
        let roi = o.roi_percent.unwrap();
        assert!((roi - 191.533_333).abs() < 1e-3, "{roi}");
        let payback = o.payback_months.unwrap();
        assert!((payback - 4.115_226).abs() < 1e-3, "{payback}");
    }

    #[test]
    fn nothing_saved_or_nothing_spent() {
        let none = Inputs {
            review_cost_manual: 0.0,
            review_cost_automated: 0.0,
            credential_hours_per_week: 0.0,
            incidents_avoided: 0.0,
            ..Inputs::default()
        }
        .outcome();
        assert_eq!(none.total, 0.0);
        assert_eq!(none.payback_months, None);
        let free = Inputs {
            annual_cost: 0.0,
            ..Inputs::default()
        }
        .outcome();
        assert_eq!(free.roi_percent, None);
    }

    #[test]
    fn bad_inputs_are_named() {
        let bad = |i: Inputs| i.check().unwrap_err().field;
        assert_eq!(
            bad(Inputs {
                hourly_cost: -1.0,
                ..Inputs::default()
            }),
            "hourly_cost"
        );
        assert_eq!(
            bad(Inputs {
                credential_time_saved: 1.5,
                ..Inputs::default()
            }),
            "credential_time_saved"
        );
        assert_eq!(
            bad(Inputs {
                agents: f64::NAN,
                ..Inputs::default()
            }),
            "agents"
        );
        assert!(Inputs::default().check().is_ok());
    }
}
