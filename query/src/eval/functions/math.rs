//! Element-wise math on instant vectors (`abs`, `ceil`, `exp`, `ln`, trig,
//! `sgn`, ...). `round` and `clamp*` take scalar arguments and live in the
//! dispatcher.

/// The float function behind a one-argument math call.
pub(crate) fn simple_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |x| x * 180.0 / std::f64::consts::PI,
        "rad" => |x| x * std::f64::consts::PI / 180.0,
        "sgn" => |x| {
            if x < 0.0 {
                -1.0
            } else if x > 0.0 {
                1.0
            } else {
                x
            }
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn math_functions_match_go() {
        let f = |n: &str, x: f64| simple_fn(n).unwrap()(x);
        assert_eq!(f("abs", -2.0), 2.0);
        assert_eq!(f("sgn", -0.5), -1.0);
        assert!(f("sgn", f64::NAN).is_nan());
        assert_eq!(f("deg", std::f64::consts::PI), 180.0);
        assert!(f("ln", -1.0).is_nan());
        assert_eq!(f("log2", 8.0), 3.0);
        assert!(simple_fn("nope").is_none());
    }
}
