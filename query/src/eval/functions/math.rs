//! Element-wise math on instant vectors (`abs`, `ceil`, `exp`, `ln`, trig,
//! `sgn`, ...). `round` and `clamp*` take scalar arguments and live in the
//! dispatcher.
//!
//! `count_values` turns values into labels, so the last bit shows: every
//! function here that is not exact by definition (`sqrt`, `abs`, ...) is
//! Go's own algorithm as Prometheus runs it on amd64 (`log_amd64.s`,
//! `exp_amd64.s`, Cephes trig with Payne-Hanek reduction, FreeBSD's
//! `log1p`, ...), not the platform libm, which rounds differently.
//! `go_math_vectors.txt` and `go_binop_vectors.txt` hold a real
//! Prometheus' answers they are checked against bit for bit.

// Go's constants are kept digit for digit as Go's sources spell them.
#![allow(clippy::excessive_precision)]

use std::f64::consts::{FRAC_PI_2, FRAC_PI_4};

/// The float function behind a one-argument math call.
pub(crate) fn simple_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => go_exp,
        "sqrt" => f64::sqrt,
        "ln" => go_log,
        "log2" => go_log2,
        "log10" => go_log10,
        "sin" => go_sin,
        "cos" => go_cos,
        "tan" => go_tan,
        "asin" => go_asin,
        "acos" => |x| FRAC_PI_2 - go_asin(x),
        "atan" => go_atan,
        "sinh" => go_sinh,
        "cosh" => |x: f64| {
            let x = x.abs();
            if x > 21.0 {
                go_exp(x) * 0.5
            } else {
                let ex = go_exp(x);
                (ex + 1.0 / ex) * 0.5
            }
        },
        "tanh" => go_tanh,
        "asinh" => go_asinh,
        "acosh" => go_acosh,
        "atanh" => go_atanh,
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

/// Go's `math.Atan` (Cephes): a rational approximation on [0, 0.66].
fn go_atan(x: f64) -> f64 {
    if x == 0.0 || x.is_nan() {
        return x;
    }
    if x > 0.0 { go_satan(x) } else { -go_satan(-x) }
}

fn go_xatan(x: f64) -> f64 {
    const P0: f64 = -8.750608600031904122785e-01;
    const P1: f64 = -1.615753718733365076637e+01;
    const P2: f64 = -7.500855792314704667340e+01;
    const P3: f64 = -1.228866684490136173410e+02;
    const P4: f64 = -6.485021904942025371773e+01;
    const Q0: f64 = 2.485846490142306297962e+01;
    const Q1: f64 = 1.650270098316988542046e+02;
    const Q2: f64 = 4.328810604912902668951e+02;
    const Q3: f64 = 4.853903996359136964868e+02;
    const Q4: f64 = 1.945506571482613964425e+02;
    let z = x * x;
    let z = z * ((((P0 * z + P1) * z + P2) * z + P3) * z + P4)
        / (((((z + Q0) * z + Q1) * z + Q2) * z + Q3) * z + Q4);
    x * z + x
}

/// Reduces a positive argument to [0, 0.66] for `go_xatan`.
fn go_satan(x: f64) -> f64 {
    const MOREBITS: f64 = 6.123233995736765886130e-17;
    const TAN3PIO8: f64 = 2.41421356237309504880;
    if x <= 0.66 {
        return go_xatan(x);
    }
    if x > TAN3PIO8 {
        return FRAC_PI_2 - go_xatan(1.0 / x) + MOREBITS;
    }
    FRAC_PI_4 + go_xatan((x - 1.0) / (x + 1.0)) + 0.5 * MOREBITS
}

/// Go's `math.Asin`, through `satan` (its `Acos` is `Pi/2 - Asin`).
fn go_asin(x: f64) -> f64 {
    if x == 0.0 || x.is_nan() {
        return x;
    }
    let (x, neg) = if x < 0.0 { (-x, true) } else { (x, false) };
    if x > 1.0 {
        return f64::NAN;
    }
    let t = (1.0 - x * x).sqrt();
    let r = if x > 0.7 {
        FRAC_PI_2 - go_satan(t / x)
    } else {
        go_satan(x / t)
    };
    if neg { -r } else { r }
}

/// Go's `math.Sinh` (Hart & Cheney #2029 below 0.5, else from `Exp`).
fn go_sinh(x: f64) -> f64 {
    const P0: f64 = -0.6307673640497716991184787251e+6;
    const P1: f64 = -0.8991272022039509355398013511e+5;
    const P2: f64 = -0.2894211355989563807284660366e+4;
    const P3: f64 = -0.2630563213397497062819489e+2;
    const Q0: f64 = -0.6307673640497716991212077277e+6;
    const Q1: f64 = 0.1521517378790019070696485176e+5;
    const Q2: f64 = -0.173678953558233699533450911e+3;
    let (x, neg) = if x < 0.0 { (-x, true) } else { (x, false) };
    let r = if x > 21.0 {
        go_exp(x) * 0.5
    } else if x > 0.5 {
        let ex = go_exp(x);
        (ex - 1.0 / ex) * 0.5
    } else {
        let sq = x * x;
        (((P3 * sq + P2) * sq + P1) * sq + P0) * x / (((sq + Q2) * sq + Q1) * sq + Q0)
    };
    if neg { -r } else { r }
}

/// Go's `math.Atan2`, through its `Atan` (binary `atan2`).
pub(crate) fn go_atan2(y: f64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if y.is_nan() || x.is_nan() {
        return f64::NAN;
    }
    if y == 0.0 {
        return if x >= 0.0 && !x.is_sign_negative() {
            0.0_f64.copysign(y)
        } else {
            PI.copysign(y)
        };
    }
    if x == 0.0 {
        return FRAC_PI_2.copysign(y);
    }
    if x.is_infinite() {
        return match (x > 0.0, y.is_infinite()) {
            (true, true) => FRAC_PI_4.copysign(y),
            (true, false) => 0.0_f64.copysign(y),
            (false, true) => (3.0 * FRAC_PI_4).copysign(y),
            (false, false) => PI.copysign(y),
        };
    }
    if y.is_infinite() {
        return FRAC_PI_2.copysign(y);
    }
    let q = go_atan(y / x);
    if x < 0.0 {
        if q <= 0.0 { q + PI } else { q - PI }
    } else {
        q
    }
}

/// Go's `math.Pow` (binary `^`): special cases, then `Exp(yf*Log(x))` for
/// the fraction and repeated squaring of `Frexp(x)` for the integer part.
pub(crate) fn go_pow(x: f64, y: f64) -> f64 {
    let odd_int = |v: f64| v.abs() < (1u64 << 53) as f64 && v.fract() == 0.0 && (v as i64) & 1 == 1;
    if y == 0.0 || x == 1.0 {
        return 1.0;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 {
        return if y < 0.0 {
            if odd_int(y) {
                f64::INFINITY.copysign(x)
            } else {
                f64::INFINITY
            }
        } else if odd_int(y) {
            x
        } else {
            0.0
        };
    }
    // An infinite or huge (even) exponent: 1, 0 or +Inf.
    let huge = |x: f64, y: f64| {
        if x == -1.0 {
            1.0
        } else if (x.abs() < 1.0) == (y > 0.0) {
            0.0
        } else {
            f64::INFINITY
        }
    };
    if y.is_infinite() {
        return huge(x, y);
    }
    if x.is_infinite() {
        if x < 0.0 {
            return go_pow(1.0 / x, -y);
        }
        return if y < 0.0 { 0.0 } else { f64::INFINITY };
    }
    if y == 0.5 {
        return x.sqrt();
    }
    if y == -0.5 {
        return 1.0 / x.sqrt();
    }
    let (mut yi, mut yf) = (y.abs().trunc(), y.abs().fract());
    if yf != 0.0 && x < 0.0 {
        return f64::NAN;
    }
    if yi >= 9.223_372_036_854_775_808e18 {
        return huge(x, y);
    }
    let mut a1 = 1.0;
    let mut ae: i64 = 0;
    if yf != 0.0 {
        if yf > 0.5 {
            yf -= 1.0;
            yi += 1.0;
        }
        a1 = go_exp(yf * go_log(x));
    }
    let (mut x1, xe) = frexp(x);
    let mut xe = xe as i64;
    let mut i = yi as i64;
    while i != 0 {
        if !(-(1 << 12)..=(1 << 12)).contains(&xe) {
            ae += xe;
            break;
        }
        if i & 1 == 1 {
            a1 *= x1;
            ae += xe;
        }
        x1 *= x1;
        xe <<= 1;
        if x1 < 0.5 {
            x1 += x1;
            xe -= 1;
        }
        i >>= 1;
    }
    if y < 0.0 {
        a1 = 1.0 / a1;
        ae = -ae;
    }
    ldexp(a1, ae)
}

/// Go's `math.Ldexp`: `frac × 2^exp`, rounding once into subnormals.
fn ldexp(frac: f64, exp: i64) -> f64 {
    if frac == 0.0 || !frac.is_finite() {
        return frac;
    }
    let (f, e) = frexp(frac);
    let exp = exp + e as i64;
    if exp < -1075 {
        return 0.0_f64.copysign(f);
    }
    if exp > 1024 {
        return f64::INFINITY.copysign(f);
    }
    // f is in [0.5, 1): scale in two exact steps, then once more.
    let exp = exp as i32;
    if exp < -1021 {
        // Denormal: Go multiplies by 2^(exp+53) then 2^-53, one rounding.
        let m = f * 2f64.powi(exp + 53);
        return m * 2f64.powi(-53);
    }
    f * 2f64.powi(exp)
}

/// Pi/4 in three parts (Cephes), for arguments below 2^29.
const PI4A: f64 = 7.85398125648498535156e-1;
const PI4B: f64 = 3.77489470793079817668e-8;
const PI4C: f64 = 2.69515142907905952645e-15;
/// Go's `4 / Pi`, rounded once from the exact ratio.
const FOUR_OVER_PI: f64 =
    1.273_239_544_735_162_686_151_070_106_980_114_896_275_677_165_923_651_589_981_338;
/// 4/pi in 64-bit digits, for Payne-Hanek reduction (`trig_reduce.go`).
const M_PI4: [u64; 20] = [
    0x0000000000000001,
    0x45f306dc9c882a53,
    0xf84eafa3ea69bb81,
    0xb6c52b3278872083,
    0xfca2c757bd778ac3,
    0x6e48dc74849ba5c0,
    0x0c925dd413a32439,
    0xfc3bd63962534e7d,
    0xd1046bea5d768909,
    0xd338e04d68befc82,
    0x7323ac7306a673e9,
    0x3908bf177bf25076,
    0x3ff12fffbc0b301f,
    0xde5e2316b414da3e,
    0xda6cfd9e4f96136e,
    0x9e8c7ecd3cbfd45a,
    0xea4f758fd7cbe2f6,
    0x7a0e73ef14a525d4,
    0xd7f6bf623f1aba10,
    0xac06608df8f6d757,
];
const SIN: [f64; 6] = [
    1.58962301576546568060e-10,
    -2.50507477628578072866e-8,
    2.75573136213857245213e-6,
    -1.98412698295895385996e-4,
    8.33333333332211858878e-3,
    -1.66666666666666307295e-1,
];
const COS: [f64; 6] = [
    -1.13585365213876817300e-11,
    2.08757008419747316778e-9,
    -2.75573141792967388112e-7,
    2.48015872888517045348e-5,
    -1.38888888888730564116e-3,
    4.16666666666665929218e-2,
];

/// Go's shifts: by 64 or more gives 0.
fn shl(x: u64, n: u32) -> u64 {
    x.checked_shl(n).unwrap_or(0)
}

fn shr(x: u64, n: u32) -> u64 {
    x.checked_shr(n).unwrap_or(0)
}

/// Go's `trigReduce` (Payne-Hanek) for x >= 2^29: the octant `j` and the
/// remainder `z`.
fn trig_reduce(x: f64) -> (u64, f64) {
    if x < FRAC_PI_4 {
        return (0, x);
    }
    let mut ix = x.to_bits();
    let exp = ((ix >> 52) & 0x7ff) as i64 - 1023 - 52;
    ix &= !(0x7ff << 52);
    ix |= 1 << 52;
    let (digit, bitshift) = (((exp + 61) / 64) as usize, ((exp + 61) % 64) as u32);
    let z0 = shl(M_PI4[digit], bitshift) | shr(M_PI4[digit + 1], 64 - bitshift);
    let z1 = shl(M_PI4[digit + 1], bitshift) | shr(M_PI4[digit + 2], 64 - bitshift);
    let z2 = shl(M_PI4[digit + 2], bitshift) | shr(M_PI4[digit + 3], 64 - bitshift);
    let z2hi = ((z2 as u128 * ix as u128) >> 64) as u64;
    let z1p = z1 as u128 * ix as u128;
    let (z1hi, z1lo) = ((z1p >> 64) as u64, z1p as u64);
    let z0lo = z0.wrapping_mul(ix);
    let (lo, carry) = z1lo.overflowing_add(z2hi);
    let hi = z0lo.wrapping_add(z1hi).wrapping_add(carry as u64);
    let mut j = hi >> 61;
    let mut hi = (hi << 3) | (lo >> 61);
    let lz = hi.leading_zeros();
    let e = 1023 - (lz as u64 + 1);
    hi = shl(hi, lz + 1) | shr(lo, 64 - (lz + 1));
    hi >>= 64 - 52;
    hi |= e << 52;
    let mut z = f64::from_bits(hi);
    if j & 1 == 1 {
        j += 1;
        j &= 7;
        z -= 1.0;
    }
    (j, z * FRAC_PI_4)
}

/// The octant and remainder of |x| for sin/cos/tan, as Go computes them.
fn reduce(x: f64) -> (u64, f64) {
    if x >= (1u64 << 29) as f64 {
        return trig_reduce(x);
    }
    let mut j = (x * FOUR_OVER_PI) as u64;
    let mut y = j as f64;
    if j & 1 == 1 {
        j += 1;
        y += 1.0;
    }
    (j, ((x - y * PI4A) - y * PI4B) - y * PI4C)
}

fn sin_poly(z: f64, zz: f64) -> f64 {
    z + z
        * zz
        * (((((SIN[0] * zz + SIN[1]) * zz + SIN[2]) * zz + SIN[3]) * zz + SIN[4]) * zz + SIN[5])
}

fn cos_poly(zz: f64) -> f64 {
    1.0 - 0.5 * zz
        + zz * zz
            * (((((COS[0] * zz + COS[1]) * zz + COS[2]) * zz + COS[3]) * zz + COS[4]) * zz + COS[5])
}

/// Go's `math.Sin` (Cephes, Payne-Hanek from 2^29).
fn go_sin(x: f64) -> f64 {
    if x == 0.0 || x.is_nan() {
        return x;
    }
    if x.is_infinite() {
        return f64::NAN;
    }
    let (x, mut neg) = if x < 0.0 { (-x, true) } else { (x, false) };
    let (mut j, z) = reduce(x);
    j &= 7;
    if j > 3 {
        neg = !neg;
        j -= 4;
    }
    let zz = z * z;
    let y = if j == 1 || j == 2 {
        cos_poly(zz)
    } else {
        sin_poly(z, zz)
    };
    if neg { -y } else { y }
}

/// Go's `math.Cos`.
fn go_cos(x: f64) -> f64 {
    if x.is_nan() || x.is_infinite() {
        return f64::NAN;
    }
    let (mut j, z) = reduce(x.abs());
    j &= 7;
    let mut neg = false;
    if j > 3 {
        j -= 4;
        neg = !neg;
    }
    if j > 1 {
        neg = !neg;
    }
    let zz = z * z;
    let y = if j == 1 || j == 2 {
        sin_poly(z, zz)
    } else {
        cos_poly(zz)
    };
    if neg { -y } else { y }
}

/// Go's `math.Tan` (Cephes).
fn go_tan(x: f64) -> f64 {
    const P: [f64; 3] = [
        -1.30936939181383777646e4,
        1.15351664838587416140e6,
        -1.79565251976484877988e7,
    ];
    const Q: [f64; 5] = [
        1.00000000000000000000e0,
        1.36812963470692954678e4,
        -1.32089234440210967447e6,
        2.50083801823357915839e7,
        -5.38695755929454629881e7,
    ];
    if x == 0.0 || x.is_nan() {
        return x;
    }
    if x.is_infinite() {
        return f64::NAN;
    }
    let (x, neg) = if x < 0.0 { (-x, true) } else { (x, false) };
    let (j, z) = reduce(x);
    let zz = z * z;
    let mut y = if zz > 1e-14 {
        z + z
            * (zz * ((P[0] * zz + P[1]) * zz + P[2])
                / ((((zz + Q[1]) * zz + Q[2]) * zz + Q[3]) * zz + Q[4]))
    } else {
        z
    };
    if j & 2 == 2 {
        y = -1.0 / y;
    }
    if neg { -y } else { y }
}

/// Go's `math.Log1p` (FreeBSD's `s_log1p.c`).
fn go_log1p(x: f64) -> f64 {
    const SQRT2_M1: f64 = 4.142135623730950488017e-01;
    const SQRT2_HALF_M1: f64 = -2.928932188134524755992e-01;
    const SMALL: f64 = 1.0 / (1u64 << 29) as f64;
    const TINY: f64 = 1.0 / (1u64 << 54) as f64;
    const TWO53: f64 = (1u64 << 53) as f64;
    const LN2_HI: f64 = 6.93147180369123816490e-01;
    const LN2_LO: f64 = 1.90821492927058770002e-10;
    const LP: [f64; 7] = [
        6.666666666666735130e-01,
        3.999999999940941908e-01,
        2.857142874366239149e-01,
        2.222219843214978396e-01,
        1.818357216161805012e-01,
        1.531383769920937332e-01,
        1.479819860511658591e-01,
    ];
    if x < -1.0 || x.is_nan() {
        return f64::NAN;
    }
    if x == -1.0 {
        return f64::NEG_INFINITY;
    }
    if x == f64::INFINITY {
        return f64::INFINITY;
    }
    let absx = x.abs();
    let mut f = 0.0;
    let mut iu: u64 = 0;
    let mut k: i64 = 1;
    if absx < SQRT2_M1 {
        if absx < SMALL {
            if absx < TINY {
                return x;
            }
            return x - x * x * 0.5;
        }
        if x > SQRT2_HALF_M1 {
            k = 0;
            f = x;
            iu = 1;
        }
    }
    let mut c = 0.0;
    if k != 0 {
        let mut u;
        if absx < TWO53 {
            u = 1.0 + x;
            iu = u.to_bits();
            k = (iu >> 52) as i64 - 1023;
            c = if k > 0 { 1.0 - (u - x) } else { x - (u - 1.0) };
            c /= u;
        } else {
            u = x;
            iu = u.to_bits();
            k = (iu >> 52) as i64 - 1023;
            c = 0.0;
        }
        iu &= 0x000f_ffff_ffff_ffff;
        if iu < 0x0006_a09e_667f_3bcd {
            u = f64::from_bits(iu | 0x3ff0_0000_0000_0000);
        } else {
            k += 1;
            u = f64::from_bits(iu | 0x3fe0_0000_0000_0000);
            iu = (0x0010_0000_0000_0000 - iu) >> 2;
        }
        f = u - 1.0;
    }
    let hfsq = 0.5 * f * f;
    let kf = k as f64;
    if iu == 0 {
        if f == 0.0 {
            if k == 0 {
                return 0.0;
            }
            c += kf * LN2_LO;
            return kf * LN2_HI + c;
        }
        let r = hfsq * (1.0 - 0.66666666666666666 * f);
        if k == 0 {
            return f - r;
        }
        return kf * LN2_HI - ((r - (kf * LN2_LO + c)) - f);
    }
    let s = f / (2.0 + f);
    let z = s * s;
    let r = z
        * (LP[0] + z * (LP[1] + z * (LP[2] + z * (LP[3] + z * (LP[4] + z * (LP[5] + z * LP[6]))))));
    if k == 0 {
        return f - (hfsq - s * (hfsq + r));
    }
    kf * LN2_HI - ((hfsq - (s * (hfsq + r) + (kf * LN2_LO + c))) - f)
}

/// Go's `math.Asinh`.
fn go_asinh(x: f64) -> f64 {
    const NEAR_ZERO: f64 = 1.0 / (1u64 << 28) as f64;
    const LARGE: f64 = (1u64 << 28) as f64;
    if x.is_nan() || x.is_infinite() {
        return x;
    }
    let (x, neg) = if x < 0.0 { (-x, true) } else { (x, false) };
    let r = if x > LARGE {
        go_log(x) + std::f64::consts::LN_2
    } else if x > 2.0 {
        go_log(2.0 * x + 1.0 / ((x * x + 1.0).sqrt() + x))
    } else if x < NEAR_ZERO {
        x
    } else {
        go_log1p(x + x * x / (1.0 + (1.0 + x * x).sqrt()))
    };
    if neg { -r } else { r }
}

/// Go's `math.Acosh`.
fn go_acosh(x: f64) -> f64 {
    const LARGE: f64 = (1u64 << 28) as f64;
    if x < 1.0 || x.is_nan() {
        return f64::NAN;
    }
    if x == 1.0 {
        return 0.0;
    }
    if x >= LARGE {
        return go_log(x) + std::f64::consts::LN_2;
    }
    if x > 2.0 {
        return go_log(2.0 * x - 1.0 / (x + (x * x - 1.0).sqrt()));
    }
    let t = x - 1.0;
    go_log1p(t + (2.0 * t + t * t).sqrt())
}

/// Go's `math.Atanh`.
fn go_atanh(x: f64) -> f64 {
    const NEAR_ZERO: f64 = 1.0 / (1u64 << 28) as f64;
    if !(-1.0..=1.0).contains(&x) || x.is_nan() {
        return f64::NAN;
    }
    if x == 1.0 {
        return f64::INFINITY;
    }
    if x == -1.0 {
        return f64::NEG_INFINITY;
    }
    let (x, neg) = if x < 0.0 { (-x, true) } else { (x, false) };
    let r = if x < NEAR_ZERO {
        x
    } else if x < 0.5 {
        let t = x + x;
        0.5 * go_log1p(t + t * x / (1.0 - x))
    } else {
        0.5 * go_log1p((x + x) / (1.0 - x))
    };
    if neg { -r } else { r }
}

/// Go's `math.Tanh` (Cephes).
fn go_tanh(x: f64) -> f64 {
    const MAXLOG: f64 = 8.8029691931113054295988e+01;
    const P: [f64; 3] = [
        -9.64399179425052238628E-1,
        -9.92877231001918586564E1,
        -1.61468768441708447952E3,
    ];
    const Q: [f64; 3] = [
        1.12811678491632931402E2,
        2.23548839060100448583E3,
        4.84406305325125486048E3,
    ];
    let z = x.abs();
    if z > 0.5 * MAXLOG {
        return if x < 0.0 { -1.0 } else { 1.0 };
    }
    if z >= 0.625 {
        let s = go_exp(2.0 * z);
        let z = 1.0 - 2.0 / (s + 1.0);
        return if x < 0.0 { -z } else { z };
    }
    if x == 0.0 {
        return x;
    }
    let s = x * x;
    x + x * s * ((P[0] * s + P[1]) * s + P[2]) / (((s + Q[0]) * s + Q[1]) * s + Q[2])
}

/// Go's `math.Frexp`: `x = frac × 2^exp` with `frac` in [½, 1).
fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let (mut x, mut exp) = (x, 0);
    if x.abs() < f64::MIN_POSITIVE {
        // Subnormal: normalise first, as Go's `normalize` does.
        x *= (1u64 << 52) as f64;
        exp = -52;
    }
    let bits = x.to_bits();
    exp += ((bits >> 52) & 0x7ff) as i32 - 1022;
    let frac = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (frac, exp)
}

/// Go's `math.Log` on amd64 (`log_amd64.s`, FreeBSD's `e_log.c` in the
/// same operation order; its frexp reads the exponent bits directly).
fn go_log(x: f64) -> f64 {
    const LN2_HI: f64 = 6.93147180369123816490e-01;
    const LN2_LO: f64 = 1.90821492927058770002e-10;
    const L1: f64 = 6.666666666666735130e-01;
    const L2: f64 = 3.999999999940941908e-01;
    const L3: f64 = 2.857142874366239149e-01;
    const L4: f64 = 2.222219843214978396e-01;
    const L5: f64 = 1.818357216161805012e-01;
    const L6: f64 = 1.531383769920937332e-01;
    const L7: f64 = 1.479819860511658591e-01;
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x < 0.0 {
        return f64::NAN;
    }
    let bits = x.to_bits();
    let mut f1 = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3fe0_0000_0000_0000);
    let mut k = (((bits >> 52) & 0x7ff) as i32 - 0x3fe) as f64;
    if f1 < std::f64::consts::FRAC_1_SQRT_2 {
        k -= 1.0;
        f1 *= 2.0;
    }
    let f = f1 - 1.0;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let s4 = s2 * s2;
    let t1 = s2 * (L1 + s4 * (L3 + s4 * (L5 + s4 * L7)));
    let t2 = s4 * (L2 + s4 * (L4 + s4 * L6));
    let r = t1 + t2;
    let hfsq = 0.5 * f * f;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

/// Go's `math.Log2`: exact for powers of two, else `Log(frac)/Ln2 + exp`.
fn go_log2(x: f64) -> f64 {
    let (frac, exp) = frexp(x);
    if frac == 0.5 {
        return (exp - 1) as f64;
    }
    go_log(frac) * std::f64::consts::LOG2_E + exp as f64
}

/// Go's `math.Log10`: `Log(x) * (1/Ln10)`.
fn go_log10(x: f64) -> f64 {
    go_log(x) * std::f64::consts::LOG10_E
}

/// Go's `math.Exp` on amd64 (`exp_amd64.s`, after Shibata's SLEEF): a
/// Taylor series on x/16 squared back four times. Go picks its FMA variant
/// on CPUs with AVX2 and FMA; `mul_add` computes exactly that fused step.
fn go_exp(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2U: f64 = 0.69314718055966295651160180568695068359375;
    const LN2L: f64 = 0.28235290563031577122588448175013436025525412068e-12;
    const OVERFLOW: f64 = 7.09782712893384e+02;
    const C: [f64; 9] = [
        0.5,
        1.0,
        2.0,
        1.6666666666666666667e-1,
        4.1666666666666666667e-2,
        8.3333333333333333333e-3,
        1.3888888888888888889e-3,
        1.9841269841269841270e-4,
        2.4801587301587301587e-5,
    ];
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == f64::NEG_INFINITY {
        return 0.0;
    }
    if x > OVERFLOW {
        return f64::INFINITY;
    }
    // CVTSD2SL: round to nearest even; out of range gives i32::MIN.
    let e = (LOG2E * x).round_ties_even();
    let bx = if (i32::MIN as f64..=i32::MAX as f64).contains(&e) {
        e as i32
    } else {
        i32::MIN
    };
    let k = bx as f64;
    let fr = if use_fma() {
        let mut x = (-LN2U).mul_add(k, x);
        x = (-LN2L).mul_add(k, x);
        x *= 0.0625;
        let mut p = C[8];
        for c in [C[7], C[6], C[5], C[4], C[3], C[0], C[1]] {
            p = p.mul_add(x, c);
        }
        x *= p;
        for _ in 0..3 {
            x *= C[2] + x;
        }
        let t = C[2] + x;
        x.mul_add(t, C[1])
    } else {
        let mut x = x - LN2U * k;
        x -= LN2L * k;
        x *= 0.0625;
        let mut p = C[8];
        for c in [C[7], C[6], C[5], C[4], C[3], C[0], C[1]] {
            p = p * x + c;
        }
        x *= p;
        for _ in 0..4 {
            x *= C[2] + x;
        }
        x + C[1]
    };
    let biased = bx.wrapping_add(0x3ff);
    if biased <= 0 {
        // Subnormal results (Go answers exp(-745) with 5e-324): scale into
        // the normal range exactly, then round once at 2^-1022.
        if bx < -1022 - 53 {
            return 0.0;
        }
        let normal = f64::from_bits(((bx + 1022 + 0x3ff) as u64) << 52);
        return fr * normal * f64::from_bits(1u64 << 52);
    }
    if biased >= 0x7ff {
        return f64::INFINITY;
    }
    fr * f64::from_bits((biased as u64) << 52)
}

/// Go's `useFMA` for `Exp` on amd64: AVX2 and FMA present.
fn use_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
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

    /// Every function of `go_math_vectors.txt` (answers of a real
    /// Prometheus 2.42) whose result differs from Prometheus'.
    fn mismatches() -> Vec<String> {
        let mut bad = Vec::new();
        for line in include_str!("go_math_vectors.txt").lines() {
            if line.starts_with('#') {
                continue;
            }
            let mut it = line.split(' ');
            let (name, bits, want) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            let x = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
            let got = crate::format::prometheus_json_value(simple_fn(name).unwrap()(x));
            if got != want {
                bad.push(format!("{name}({x:?}) = {got}, Prometheus {want}"));
            }
        }
        bad
    }

    #[test]
    fn every_math_function_matches_prometheus_to_the_bit() {
        let bad = mismatches();
        assert!(bad.is_empty(), "{bad:#?}");
    }

    #[test]
    fn pow_and_atan2_match_prometheus_to_the_bit() {
        let mut bad = Vec::new();
        for line in include_str!("go_binop_vectors.txt").lines() {
            if line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split(' ').collect();
            let a = f64::from_bits(u64::from_str_radix(f[1], 16).unwrap());
            let b = f64::from_bits(u64::from_str_radix(f[2], 16).unwrap());
            let got = if f[0] == "pow" {
                go_pow(a, b)
            } else {
                go_atan2(a, b)
            };
            let got = crate::format::prometheus_json_value(got);
            if got != f[3] {
                bad.push(format!("{} {a:?} {b:?} = {got}, Prometheus {}", f[0], f[3]));
            }
        }
        assert!(bad.is_empty(), "{} of them: {bad:#?}", bad.len());
    }

    #[test]
    fn logs_and_exp_are_gos_algorithms() {
        assert_eq!(go_log(1.0), 0.0);
        assert_eq!(go_log(std::f64::consts::E), 1.0);
        assert!(go_log(-1.0).is_nan());
        assert_eq!(go_log(0.0), f64::NEG_INFINITY);
        assert_eq!(go_exp(0.0), 1.0);
        assert_eq!(go_exp(1.0), std::f64::consts::E);
        assert_eq!(go_exp(-1e300), 0.0);
        assert_eq!(go_exp(710.0), f64::INFINITY);
        assert_eq!(go_exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(frexp(8.0), (0.5, 4));
        assert_eq!(frexp(5e-324), (0.5, -1073));
    }
}
