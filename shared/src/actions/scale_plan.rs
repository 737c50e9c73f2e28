//! How far to scale (pure): bounded by the autoscaling maximum, a per-service
//! cap (tag `autopilot:max-tasks`), a global cap, and for automatic actions a
//! step limit (at most double per action). Automatic scaling never scales in,
//! and no scale ever sets fewer than one task: a cap below one (or a cap tag
//! that is not a number) is a configuration error, refused with its name —
//! only the confirmed, manual scale-to-zero reaches 0.

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScaleBounds {
    pub autoscaling_max: Option<i32>,
    /// The service's `autopilot:max-tasks` tag as written.
    pub service_cap: Option<String>,
    pub global_cap: i32,
}

/// The caps as numbers, or the configuration error that makes any scale unsafe.
fn caps(bounds: &ScaleBounds) -> Result<(Option<i32>, Option<i32>), String> {
    let below_one = |what: String| format!("configuration error: {what} is below one task; nothing scaled");
    if let Some(m) = bounds.autoscaling_max
        && m < 1
    {
        return Err(below_one(format!("autoscaling maximum {m}")));
    }
    let service_cap = match bounds.service_cap.as_deref().map(str::trim) {
        None => None,
        Some(v) => match v.parse::<i32>() {
            Ok(c) if c < 1 => return Err(below_one(format!("service cap autopilot:max-tasks={c}"))),
            Ok(c) => Some(c),
            Err(_) => {
                return Err(format!(
                    "configuration error: tag autopilot:max-tasks={v:?} is not a whole number; nothing scaled"
                ));
            }
        },
    };
    if bounds.global_cap < 1 {
        return Err(below_one(format!("global cap MAX_TASKS={}", bounds.global_cap)));
    }
    Ok((bounds.autoscaling_max, service_cap))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScalePlan {
    pub from: i32,
    pub to: i32,
    /// What lowered the target, for the notification.
    pub limited_by: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleDecision {
    Plan(ScalePlan),
    Refuse(String),
}

/// `requested`: the desired count a person asked for; `None` for an automatic
/// scale-out, which doubles (at least +1).
pub fn plan_scale(current: i32, requested: Option<i32>, automatic: bool, bounds: &ScaleBounds) -> ScaleDecision {
    let wanted = match requested {
        Some(n) => n,
        None => (current.saturating_mul(2)).max(current + 1),
    };
    if wanted < 1 {
        return ScaleDecision::Refuse(
            "scale needs a desired count of at least 1 (scale-to-zero is its own, manual action)".into(),
        );
    }
    if automatic && wanted < current {
        return ScaleDecision::Refuse(format!("automatic scaling never scales in ({current} -> {wanted})"));
    }
    let (autoscaling_max, service_cap) = match caps(bounds) {
        Ok(c) => c,
        Err(why) => return ScaleDecision::Refuse(why),
    };
    let mut to = wanted;
    let mut limited_by = Vec::new();
    let mut cap = |value: i32, why: String, to: &mut i32| {
        if *to > value {
            *to = value;
            limited_by.push(why);
        }
    };
    if automatic {
        let step = current.saturating_mul(2).max(current + 1);
        cap(step, format!("step limit: at most double per action ({step})"), &mut to);
    }
    if let Some(m) = autoscaling_max {
        cap(m, format!("autoscaling maximum {m}"), &mut to);
    }
    if let Some(c) = service_cap {
        cap(c, format!("service cap autopilot:max-tasks={c}"), &mut to);
    }
    cap(bounds.global_cap, format!("global cap MAX_TASKS={}", bounds.global_cap), &mut to);
    if to == current {
        return ScaleDecision::Refuse(format!(
            "already at {current} tasks{}",
            if limited_by.is_empty() { String::new() } else { format!(" ({})", limited_by.join(", ")) }
        ));
    }
    if automatic && to < current {
        return ScaleDecision::Refuse(format!(
            "{current} tasks already exceed the bounds ({}); automatic scaling never scales in",
            limited_by.join(", ")
        ));
    }
    ScaleDecision::Plan(ScalePlan { from: current, to, limited_by })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(asg: Option<i32>, cap: Option<i32>, global: i32) -> ScaleBounds {
        ScaleBounds { autoscaling_max: asg, service_cap: cap.map(|c| c.to_string()), global_cap: global }
    }

    fn to(d: ScaleDecision) -> i32 {
        match d {
            ScaleDecision::Plan(p) => p.to,
            ScaleDecision::Refuse(why) => panic!("refused: {why}"),
        }
    }

    #[test]
    fn scales_stay_within_every_cap_and_automatic_ones_never_scale_in() {
        assert_eq!(to(plan_scale(3, None, true, &b(None, None, 50))), 6, "automatic doubles");
        assert_eq!(to(plan_scale(0, None, true, &b(None, None, 50))), 1, "from zero, +1");
        assert_eq!(to(plan_scale(3, None, true, &b(Some(5), None, 50))), 5, "autoscaling max");
        assert_eq!(to(plan_scale(3, None, true, &b(Some(10), Some(4), 50))), 4, "service cap");
        assert_eq!(to(plan_scale(3, None, true, &b(None, None, 5))), 5, "global cap");
        assert_eq!(to(plan_scale(3, Some(20), true, &b(None, None, 50))), 6, "automatic step limit");
        assert_eq!(to(plan_scale(3, Some(20), false, &b(None, None, 50))), 20, "a person may jump");
        assert_eq!(to(plan_scale(3, Some(20), false, &b(Some(12), None, 50))), 12, "but not past the caps");
        assert_eq!(to(plan_scale(6, Some(2), false, &b(None, None, 50))), 2, "a person may scale in");
    }

    #[test]
    fn automatic_scaling_never_scales_in() {
        assert!(matches!(plan_scale(6, Some(2), true, &b(None, None, 50)), ScaleDecision::Refuse(_)));
        assert!(matches!(plan_scale(8, None, true, &b(Some(5), None, 50)), ScaleDecision::Refuse(_)));
    }

    #[test]
    fn at_the_cap_is_a_refusal_that_says_which_cap() {
        let ScaleDecision::Refuse(why) = plan_scale(5, None, true, &b(Some(5), None, 50)) else { panic!() };
        assert!(why.contains("autoscaling maximum 5"), "{why}");
        assert!(matches!(plan_scale(3, Some(0), false, &b(None, None, 50)), ScaleDecision::Refuse(_)));
    }

    #[test]
    fn when_a_cap_is_below_one_should_refuse_as_a_configuration_error_naming_it() {
        // (bounds, what the refusal must name); a manual scale to 4 and an automatic scale-out alike.
        let cases = [
            (b(Some(0), None, 50), "autoscaling maximum 0"),
            (b(Some(-1), None, 50), "autoscaling maximum -1"),
            (b(None, Some(0), 50), "autopilot:max-tasks=0"),
            (b(None, Some(-3), 50), "autopilot:max-tasks=-3"),
            (b(None, None, 0), "MAX_TASKS=0"),
            (b(Some(8), Some(0), 50), "autopilot:max-tasks=0"),
        ];
        for (bounds, named) in cases {
            for (requested, automatic) in [(Some(4), false), (None, true)] {
                match plan_scale(2, requested, automatic, &bounds) {
                    ScaleDecision::Refuse(why) => {
                        assert!(why.contains(named) && why.contains("configuration error"), "{bounds:?}: {why}")
                    }
                    ScaleDecision::Plan(p) => panic!("{bounds:?} {requested:?}: planned {p:?}"),
                }
            }
        }
    }

    #[test]
    fn when_the_cap_tag_is_not_a_number_should_refuse_as_a_configuration_error() {
        for tag in ["five", "", "2.5"] {
            let bounds = ScaleBounds { service_cap: Some(tag.into()), global_cap: 50, ..Default::default() };
            let ScaleDecision::Refuse(why) = plan_scale(2, Some(4), false, &bounds) else { panic!("{tag:?} planned") };
            assert!(why.contains("configuration error") && why.contains("autopilot:max-tasks"), "{why}");
        }
    }

    #[test]
    fn when_every_cap_is_at_least_one_a_scale_never_plans_fewer_than_one_task() {
        for asg in [None, Some(1), Some(3)] {
            for cap in [None, Some(1), Some(2)] {
                for global in [1, 2, 50] {
                    for requested in [Some(1), Some(4), None] {
                        if let ScaleDecision::Plan(p) = plan_scale(2, requested, false, &b(asg, cap, global)) {
                            assert!(p.to >= 1, "{asg:?} {cap:?} {global} {requested:?}: {p:?}");
                        }
                    }
                }
            }
        }
    }
}
