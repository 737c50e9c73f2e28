//! How far to scale (pure): bounded by the autoscaling maximum, a per-service
//! cap (tag `autopilot:max-tasks`), a global cap, and for automatic actions a
//! step limit (at most double per action). Automatic scaling never scales in.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScaleBounds {
    pub autoscaling_max: Option<i32>,
    pub service_cap: Option<i32>,
    pub global_cap: i32,
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
    if let Some(m) = bounds.autoscaling_max {
        cap(m, format!("autoscaling maximum {m}"), &mut to);
    }
    if let Some(c) = bounds.service_cap {
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
        ScaleBounds { autoscaling_max: asg, service_cap: cap, global_cap: global }
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
}
