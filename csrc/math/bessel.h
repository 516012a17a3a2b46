// Modified Bessel functions of the first kind and the von Mises-Fisher normalizer, in float64.
//
//   log_bessel_iv(v, x)        log I_v(x)                                  v >= 0, x >= 0
//   bessel_iv_ratio(v, x)      R_v(x) = I_v(x) / I_{v-1}(x)                v >= 1/2, x >= 0 (TFP's convention)
//   vmf_log_normalizer(k, d)   log C_d(k), C_d(k) = k^{d/2-1} / ((2 pi)^{d/2} I_{d/2-1}(k)),  d >= 2, k >= 0
//   vmf_mean_resultant(k, d)   A_d(k) = I_{d/2}(k) / I_{d/2-1}(k) = -d/dk log C_d(k)
//   vmf_log_normalizer_and_mean_resultant(k, d, &a)   log C_d(k) and a = A_d(k) in one pass
//
// Accuracy, measured against 50-digit mpmath references (tests/unit/test_special_accuracy.py; the table per
// region is in docs/special_functions.md): |error| / max(1, |value|) <= 1e-15 for d in [2, 1e5], kappa
// in {0} u [1e-10, 1e7] and orders v in [0, 5e4], except a few ulps of the largest intermediate term
// (<= 7e-15) where log I or log C_d is a small difference of O(10..100) terms, at inputs where the
// function itself has a condition number of that size. The ratios are accurate relatively (<= 1e-15),
// also where they are tiny (A_d ~ kappa/d). Every result is finite where the true value is.
//
// Every function reduces to a lower order mu and the pair
//   log I_mu(x)   and   I_{mu+1}(x) / I_mu(x)
// (mu = v for log I_v, mu = v - 1 for R_v, mu = d/2 - 1 for log C_d and A_d), evaluated in one of four
// regions chosen from (mu, x), with q = x^2/4:
//
//  S. Power series (DLMF 10.25.2), for mu < 32 and x <= 48 - 3mu/4 (outside H), or mu >= 32 and
//     q <= c(mu) (mu+1), c = 1, 1/2, 1/4 from mu = 32, 100, 500:
//       I_mu(x) = (x/2)^mu / Gamma(mu+1) * S,   S = sum_{k>=0} t_k,   t_k = q^k / (k! (mu+1)_k),
//       I_{mu+1}(x) / I_mu(x) = (2/x) sum_k k t_k / S      (the x-derivative of the series, DLMF 10.29.2).
//     All terms are positive, so both sums are accurate to a few ulps for any x; the term count (about
//     x/2 + 9 sqrt(x), <= 62 here) bounds the region. log C_d = -log|S^{d-1}| - log S is formed without
//     (x/2)^mu, so nothing cancels as kappa -> 0 and log C_d(0) = -log|S^{d-1}| exactly.
//
//  H. Hankel's large-argument expansion (DLMF 10.40.1), for mu < 32 and x >= max(20, 0.64 mu^2):
//       I_mu(x) ~ e^x / sqrt(2 pi x) * T,   T = sum_k (-1)^k a_k(mu) / x^k,
//       a_k(mu) = prod_{j=1..k} (4 mu^2 - (2j-1)^2) / (8j)                       (DLMF 10.17.1),
//       I_{mu+1}(x) / I_mu(x) = 1 - (mu + 1/2)/x - sum_k k (-1)^k a_k / x^k / (x T)
//     (the derivative of the expansion and DLMF 10.29.2; (mu+1/2)/x <= 0.3 and the last term is
//     O(mu^2/x^2), so nothing cancels). The neglected exponentially small part is e^{-2x} < 1e-17
//     relative; the threshold keeps T within 40 terms of a 1e-17 truncation error and its cancellation
//     (sum |terms| / |T|) below 5. For half-integer mu the sum terminates.
//
//  D. Olver's uniform asymptotic (Debye) expansion, for mu >= 32 outside S (Olver 1954; DLMF 10.41.3):
//       I_nu(nu z) ~ e^{nu eta} / ((2 pi nu)^{1/2} (1 + z^2)^{1/4}) sum_{k>=0} U_k(p) / nu^k,
//       p = 1/sqrt(1+z^2),  eta = sqrt(1+z^2) + log(z / (1 + sqrt(1+z^2)))          (DLMF 10.41.7),
//     U_k from Debye's recurrence (DLMF 10.41.10; coefficients below: exact rationals rounded once). It
//     is uniform in z in (0, inf); with K(nu) terms (13 at nu = 32 down to 4 for nu >= 13788) the
//     truncation error max_p |U_K(p)| / nu^K is below 1.5e-17. The ratio comes from the companion
//     expansion of I_nu' (DLMF 10.41.4, V_k from DLMF 10.41.11) and I_{nu+1} = I_nu' - (nu/x) I_nu
//     (DLMF 10.29.2), rearranged so that no two large terms cancel, for small or large z:
//       I_{nu+1}(x) / I_nu(x) = z / (1 + sqrt(1+z^2)) + z p sum_{k>=1} W_k(p)/nu^k / sum_{k>=0} U_k(p)/nu^k,
//       W_k = (V_k - U_k) / (1 - p^2) = -p (U_{k-1}/2 + p U_{k-1}'),   a polynomial (exact rationals).
//     (A difference of two Debye logarithms would lose |log I| * eps, 1e-9 at x = 1e7.) nu * eta
//     vanishes at z0 = 0.66274...: near it (|z - z0| <= 0.15) it is summed as a Taylor series in
//     z - z0 with nu (z - z0) = x - nu z0 formed exactly, since the direct formula leaves an absolute
//     error ~ nu * eps there (3e-13 relative for log I_{5e4}). In log C_d the terms mu log kappa and
//     mu log z are combined analytically into mu log mu.
//
//  R. Recurrence from the Debye region, for mu < 32 between S and H (a band that exists only for
//     mu > 8.1): with N = ceil(32 - mu) and top = mu + N, region D gives log I_top(x) and
//     I_{top+1}(x)/I_top(x); the three-term recurrence (DLMF 10.29.1)
//       I_{k-1}(x) = (2k/x) I_k(x) + I_{k+1}(x)
//     run downwards from y_{top+1} = I_{top+1}/I_top, y_top = 1 to y_mu, y_{mu+1} gives
//     log I_mu = log I_top + log y_mu and I_{mu+1}/I_mu = y_{mu+1} / y_mu. Downwards, I_k is the dominant
//     solution (the other one, (-1)^k K_k, decays), so the recurrence is stable: the relative error grows
//     by about one rounding per step, one multiply-add per step. This is Miller's backward recurrence
//     (Amos 1974; the Gauss continued fraction for I_mu/I_{mu-1}, DLMF 10.33.1, is the same recurrence
//     for the ratio y_{k-1}/y_k = 2k/x + y_{k+1}/y_k) started from exact values instead of a guess, so no
//     normalization is needed.
//
// lgamma(mu+1) and -log|S^{d-1}| = lgamma(d/2) - log 2 - (d/2) log pi are table lookups (correctly
// rounded) for 2 mu + 2 and d integer <= 256, else lgamma. The region thresholds balance cost (each
// region ~20-100 ns per call on the 2.1 GHz x86 cores this was tuned on) against accuracy; every loop has a
// fixed bound. Special values: log I_v(0) = 0 for v = 0 and -inf for v > 0; R_v(0) = A_d(0) = 0;
// x = +inf gives log I = +inf, log C_d = -inf, R = A = 1; NaN or out-of-domain arguments give NaN.
//
// Every function takes a last argument `single` (default false), true when the result is rounded to
// float32: the truncation tolerance becomes 1e-10 (series and Hankel sums stop earlier), region D
// starts at order 10 with K(nu) terms for 1e-10, region H at x >= max(11.5 + mu/4, 0.225 mu^2), and
// there is no region R. The single and double paths agree to 1e-9 relative (measured 8e-10).
//
// References
//   F. W. J. Olver, The asymptotic expansion of Bessel functions of large order, Phil. Trans. R. Soc.
//     A 247 (1954) 328-368.  NIST Digital Library of Mathematical Functions (DLMF), chapter 10:
//     10.17.1, 10.25.2, 10.29.1-2, 10.33.1, 10.40.1, 10.41.3-4, 10.41.7, 10.41.10-11.
//   D. E. Amos, Computation of modified Bessel functions and their ratios, Math. Comp. 28 (1974) 239-251.
//   TensorFlow Probability, tfp.math.bessel_ive / log_bessel_ive / bessel_iv_ratio (series, Olver's
//     uniform expansion, continued fractions: the same kinds of regions with other thresholds).
//   Reference values: the defining integrals at 50 digits (tests/reference/special_reference.py).
#pragma once

#include "common.h"

namespace hvae {
namespace math {

namespace detail {

// Region D from this order on; region R starts its recurrence at an order in [32, 33).
constexpr double kDebyeMinOrder = 32.0;
// `single` (the result is rounded to float32): truncation errors of 1e-10 suffice, so the sums stop
// earlier, region D starts at order 10 with fewer terms and region H at smaller x (no region R).
constexpr double kDebyeMinOrderSingle = 10.0;
HVAE_HD double tolerance(bool single) { return single ? 1e-10 : 1e-17; }
HVAE_HD double debye_min_order(bool single) { return single ? kDebyeMinOrderSingle : kDebyeMinOrder; }
constexpr int kMaxSeriesTerms = 98;  // needed: <= 62 in region S
constexpr int kMaxHankelTerms = 44;  // needed: <= 40 in region H

// U_k(p) = p^k * sum_{j=0..k} U[k(k+1)/2 + j] p^{2j}, k = 0..12 (DLMF 10.41.10).
// clang-format off: one row of coefficients per line
#define HVAE_DEBYE_U_VALUES \
    /* U_0 */ 1.0, \
    /* U_1 */ 0.125, -0.20833333333333334, \
    /* U_2 */ 0.0703125, -0.4010416666666667, 0.3342013888888889, \
    /* U_3 */ 0.0732421875, -0.8912109375, 1.8464626736111112, -1.0258125964506173, \
    /* U_4 */ 0.112152099609375, -2.3640869140625, 8.78912353515625, -11.207002616222994, \
        4.669584423426247, \
    /* U_5 */ 0.22710800170898438, -7.368794359479632, 42.53499874538846, -91.81824154324002, \
        84.63621767460073, -28.212072558200244, \
    /* U_6 */ 0.5725014209747314, -26.491430486951554, 218.1905117442116, -699.5796273761325, \
        1059.9904525279999, -765.2524681411817, 212.57013003921713, \
    /* U_7 */ 1.7277275025844574, -108.09091978839466, 1200.9029132163525, -5305.646978613403, \
        11655.393336864534, -13586.550006434138, 8061.722181737309, -1919.457662318407, \
    /* U_8 */ 6.074042001273483, -493.915304773088, 7109.514302489364, -41192.65496889755, \
        122200.46498301746, -203400.17728041555, 192547.00123253153, -96980.59838863752, \
        20204.29133096615, \
    /* U_9 */ 24.380529699556064, -2499.8304818112097, 45218.76898136273, -331645.1724845636, \
        1268365.2733216248, -2813563.226586534, 3763271.297656404, -2998015.9185381066, \
        1311763.6146629772, -242919.18790055133, \
    /* U_10 */ 110.01714026924674, -13886.08975371704, 308186.4046126624, -2785618.1280864547, \
        13288767.166421818, -37567176.66076335, 66344512.27472903, -74105148.21153265, \
        50952602.49266464, -19706819.118432228, 3284469.853072038, \
    /* U_11 */ 551.3358961220206, -84005.43360302408, 2243768.1779224495, -24474062.72573873, \
        142062907.7975331, -495889784.2750303, 1106842816.8230145, -1621080552.1083372, \
        1553596899.57058, -939462359.6815784, 325573074.18576574, -49329253.66450996, \
    /* U_12 */ 3038.090510922384, -549842.3275722887, 17395107.553978164, -225105661.88941526, \
        1559279864.8792574, -6563293792.619285, 17954213731.1556, -33026599749.800724, \
        41280185579.753975, -34632043388.158775, 18688207509.295826, -5866481492.051847, \
        814789096.1183121
// clang-format on
// W_k(p) = p^k * sum_{j=0..k-1} W[(k-1)k/2 + j] p^{2j}, k = 1..12, W_k = -p (U_{k-1}/2 + p U_{k-1}').
// clang-format off: one row of coefficients per line
#define HVAE_DEBYE_W_VALUES \
    /* W_1 */ -0.5, \
    /* W_2 */ -0.1875, 0.7291666666666666, \
    /* W_3 */ -0.17578125, 1.8046875, -2.1723090277777777, \
    /* W_4 */ -0.25634765625, 4.90166015625, -13.848470052083334, 9.745219666280864, \
    /* W_5 */ -0.5046844482421875, 15.36656494140625, -74.70755004882812, 117.67352747034144, \
        -58.36980529282809, \
    /* W_6 */ -1.249094009399414, 55.26595769609724, -404.0824880811903, 1055.9097777472603, \
        -1142.5889386071099, 437.2871246521038, \
    /* W_7 */ -3.7212592363357544, 225.17715913908822, -2291.0003733142216, 8744.745342201657, \
        -15369.861561655998, 12626.665724329498, -3932.547405725517, \
    /* W_8 */ -12.95795626938343, 1026.8637379897493, -13810.383501988053, 71626.23421128094, \
        -180658.59672140027, 237764.6251125974, -157203.58254387754, 41268.33973984575, \
    /* W_9 */ -51.629357010824606, 5186.110700117424, -88868.92878111705, 597293.4970490145, \
        -2016307.6722197882, 3762903.2796876873, -3947213.5252668965, 2182063.463744344, \
        -495005.13760867063, \
    /* W_10 */ -231.6150321457826, 28748.05054082891, -610453.3812483968, 5140500.173510736, \
        -22196392.283128433, 54864482.918437414, -80910332.89961268, 70453374.08564551, \
        -33449972.17390592, 6680277.667265162, \
    /* W_11 */ -1155.1799728270908, 173576.121921463, -4468702.866883605, 45962699.1134265, \
        -245842192.57880363, 770127121.5456487, -1492751526.1814032, 1815576131.1825502, \
        -1350243966.055613, 561644344.8753184, -100176330.51869716, \
    /* W_12 */ -6340.362805403237, 1134073.3536408253, -34778406.757797964, 428296097.7004278, \
        -2770226702.051895, 10661630361.91315, -26010806195.34084, 41337554078.762596, \
        -42723914738.19095, 27714139610.606564, -10255551836.851622, 1652529997.7610838
// clang-format on

// lgamma(n/2) and -log|S^{n-1}| = lgamma(n/2) - log 2 - (n/2) log pi for n = 1..256, correctly rounded
// (mpmath at 40 digits): the common dimensions skip a call of lgamma (~15 ns) and two roundings.
// clang-format off: one row of coefficients per line
#define HVAE_LGAMMA_HALF_VALUES \
    0.5723649429247001, 0.0, -0.12078223763524522, 0.0, 0.2846828704729192, 0.6931471805599453, \
    1.2009736023470743, 1.791759469228055, 2.4537365708424423, 3.1780538303479458, 3.9578139676187165, \
    4.787491742782046, 5.662562059857142, 6.579251212010101, 7.534364236758733, 8.525161361065415, \
    9.549267257300997, 10.60460290274525, 11.689333420797269, 12.801827480081469, 13.940625219403763, \
    15.104412573075516, 16.292000476567242, 17.502307845873887, 18.734347511936445, 19.987214495661885, \
    21.2600761562447, 22.552163853123425, 23.862765841689086, 25.19122118273868, 26.536914491115613, \
    27.89927138384089, 29.277754515040815, 30.671860106080672, 32.08111489594735, 33.50507345013689, \
    34.943315776876815, 36.39544520803305, 37.861086508961094, 39.339884187199495, 40.8315009745308, \
    42.335616460753485, 43.85192586067516, 45.38013889847691, 46.91997879580878, 48.47118135183523, \
    50.03349410501915, 51.60667556776438, 53.19049452616927, 54.78472939811232, 56.389167643719944, \
    58.00360522298052, 59.62784609588433, 61.261701761002, 62.90499082887651, 64.55753862700634, \
    66.21917683354903, 67.88974313718154, 69.56908092082364, 71.25703896716801, 72.9534711841694, \
    74.65823634883016, 76.37119786778277, 78.0922235533153, 79.82118541361436, 81.55795945611504, \
    83.30242550295006, 85.05446701758152, 86.81397094178108, 88.58082754219768, 90.35493026581838, \
    92.1361756036871, 93.92446296229976, 95.7196945421432, 97.52177522288821, 99.33061245478743, \
    101.14611615586458, 102.96819861451381, 104.7967743971583, 106.63176026064346, 108.47307506906539, \
    110.32063971475739, 112.17437704317788, 114.0342117814617, 115.90007047041453, 117.77188139974507, \
    119.64957454634491, 121.53308151543864, 123.42233548443954, 125.3172711493569, 127.21782467361173, \
    129.12393363912722, 131.03553699956865, 132.95257503561632, 134.87498931216194, 136.80272263732635, \
    138.73571902320253, 140.67392364823425, 142.61728282114598, 144.5657439463449, 146.51925549072064, \
    148.47776695177302, 150.44122882700194, 152.40959258449735, 154.38281063467164, 156.3608363030788, \
    158.3436238042692, 160.3311282166309, 162.32330545817118, 164.32011226319517, 166.32150615984037, \
    168.32744544842765, 170.33788918059275, 172.3527971391628, 174.37212981874515, 176.39584840699735, \
    178.42391476654845, 180.45629141754378, 182.49294152078627, 184.53382886144948, 186.57891783333784, \
    188.6281734236716, 190.68156119837465, 192.7390472878449, 194.8005983731871, 196.86618167289, \
    198.9357649299295, 201.00931639928152, 203.08680483582813, 205.1681994826412, 207.25347005962985, \
    209.34258675253685, 211.43552020227105, 213.53224149456327, 215.63272214993287, 217.73693411395422, \
    219.84484974781134, 221.95644181913033, 224.07168349307952, 226.1905483237276, 228.31301024565028, \
    230.43904356577696, 232.5686229554685, 234.70172344281826, 236.83832040516845, 238.97838956183432, \
    241.12190696702908, 243.2688490029827, 245.41919237324788, 247.57291409618688, 249.72999149863338, \
    251.8904022097232, 254.05412415488837, 256.22113555000954, 258.39141489572086, 260.5649409718632, \
    262.74169283208016, 264.9216497985528, 267.10479145686855, 269.2910976510198, 271.4805484785288, \
    273.6731242856937, 275.8688056629533, 278.0675734403661, 280.26940868320014, 282.4742926876304, \
    284.6822069765408, 286.893133295427, 289.1070536083976, 291.3239500942703, 293.54380514276073, \
    295.76660135076065, 297.9923215187034, 300.22094864701415, 302.45246593264125, 304.6868567656687, \
    306.9241047260048, 309.1641935801469, 311.4071072780187, 313.65282994987905, 315.90134590329956, \
    318.1526396202093, 320.4066957540054, 322.66349912672615, 324.9230347262869, 327.1852877037752, \
    329.45024337080525, 331.7178871969285, 333.9882048070999, 336.26118197919845, 338.5368046415996, \
    340.815058870799, 343.0959308890863, 345.37940706226686, 347.66547389743124, 349.95411804077025, \
    352.24532627543505, 354.5390855194408, 356.8353828236131, 359.1342053695754, 361.4355404677776, \
    363.73937555556347, 366.04569819527677, 368.35449607240474, 370.6657569937586, 372.979468885689, \
    375.29561979233705, 377.61419787391867, 379.9351914050425, 382.25858877306, 384.58437847644734, \
    386.91254912321756, 389.24308942936347, 391.5759882173296, 393.91123441451293, 396.24881705179155, \
    398.5887252620807, 400.93094827891576, 403.2754754350612, 405.6222961611449, 407.9713999843177, \
    410.32277652693733, 412.67641550527554, 415.03230672824964, 417.3904400961757, 419.7508055995447, \
    422.11339331782017, 424.4781934182571, 426.84519615474164, 429.21439186665157, 431.58577097773593, \
    433.9593239950148, 436.3350415076978, 438.71291418612117, 441.09293278070356, 443.47508812091894, \
    445.85937111428774, 448.2457727453846, 450.63428407486293, 453.0248962384961, 455.41760044623453, \
    457.81238798127816, 460.20925019916524, 462.6081785268749, 465.00916446194583, 467.4121995716082, \
    469.8172754919306, 472.2243839269806, 474.63351664799865, 477.04466549258564, 479.4578223639034, \
    481.87297922988796, 484.2901281224752, 486.7092611368394, 489.1303704306428, 491.553448223298
// clang-format on
// clang-format off: one row of coefficients per line
#define HVAE_MINUS_LOG_AREA_VALUES \
    -0.6931471805599453, -1.8378770664093456, -2.5310242469692907, -2.9826069522587457, \
    -3.2702890247105265, -3.4341896575482007, -3.498728178685772, -3.480307254729491, \
    -3.3906950960398037, -3.2387427794590007, -3.03134758511293, -2.7740347528743006, \
    -2.471329378723905, -2.1270051694956456, -1.7442570876717136, -1.3258249062897325, \
    -0.8740839529788491, -0.3911132504592966, 0.12125232466802152, 0.6613814410275226, \
    1.2278142374251164, 1.819236648172168, 2.434459608739194, 3.0724020351211383, 3.7320767582589984, \
    4.412578799059738, 5.113075516717854, 5.8327982706718755, 6.571035316312837, 7.3271257144377335, \
    8.100454079889966, 8.890446029690544, 9.696564217965767, 10.518304866080925, 11.3551947130229, \
    12.206788324287741, 13.072665708102969, 13.952430196334506, 14.845706554337848, 15.752139289651545, \
    16.671391134058148, 17.603141677356135, 18.547086134353112, 19.50293422923016, 20.47040918363733, \
    21.449246796739075, 22.439194606998303, 23.440011126818824, 24.451465142299014, 25.47333507131737, \
    26.505408374000297, 27.54748101033617, 28.59935694031528, 29.660847662508253, 30.731771787458054, \
    31.81195464266318, 32.90122790628118, 33.99942926698898, 35.10640210770639, 36.22199521112606, \
    37.34606248520276, 38.478462706938814, 39.619059282966724, 40.76772002557456, 41.92431694294891, \
    43.08872604252488, 44.260827146435204, 45.44050371814197, 46.627642699416825, 47.82213435690873, \
    49.023872137604734, 50.232752532548744, 51.44867494823671, 52.67154158515545, 53.90125732297575, \
    55.13772961195028, 56.38086837010272, 57.63058588582726, 58.88679672554706, 60.14941764610751, \
    61.41836751160473, 62.693567214372045, 63.974939599867824, 65.26240939522695, 66.55590314125507, \
    67.85534912766092, 69.16067733133605, 70.47181935750508, 71.78870838358128, 73.11127910557394, \
    74.43946768690408, 75.77321170949486, 77.11245012701158, 78.45712322013456, 79.80717255375549, \
    81.16254093599521, 82.5231723789467, 83.8890120610537, 85.26000629104072, 86.63610247331493, \
    88.01724907476597, 89.40339559289367, 90.79449252519788, 92.1904913397686, 93.59134444701817, \
    94.99700517250064, 96.40742773076636, 97.82256720020335, 99.24237949881892, 100.66682136091822, \
    102.09585031463871, 103.5294246603013, 104.96750344954171, 106.41004646518705, 107.85701420184469, \
    109.30836784717219, 110.7640692637986, 112.22408097186921, 113.68836613218701, 115.15688852992554, \
    116.62961255888919, 118.10650320629823, 119.58752603807659, 121.07264718462214, 122.56183332703966, \
    124.05505168381784, 125.55226999793263, 127.05345652435997, 128.55858001798185, 130.06760972187024, \
    131.58051535593418, 133.09726710591647, 134.617835612726, 136.1421919620935, 137.6703076745384, \
    139.20215469563507, 140.73770538656748, 142.27693251496177, 143.81980924598628, 145.36630913370965, \
    146.91640611270762, 148.4700744899096, 150.02728893667643, 151.5880244811015, 153.152256500527, \
    154.71996071426815, 156.29111317653823, 157.86569026956715, 159.44366869690762, 161.02502547692194, \
    162.60973793644374, 164.19778370460884, 165.7891407068493, 167.38378715904577, 168.9817015618324, \
    170.58286269505004, 172.1872496123423, 173.79484163589024, 175.40561835128128, 177.01955960250785, \
    178.63664548709215, 180.25685635133235, 181.88017278566727, 183.5065756201554, 185.13604592006467, \
    186.76856498157025, 188.40411432755593, 190.04267570351743, 191.68423107356332, 193.32876261651134, \
    194.97625272207705, 196.62668398715226, 198.28003921217038, 199.93630139755638, 201.59545374025882, \
    203.25747963036156, 204.92236264777299, 206.59008655899035, 208.26063531393746, 209.9339930428731, \
    211.61014405336886, 213.28907282735398, 214.97076401822534, 216.6552024480214, 218.3423731046574, \
    220.03226113922105, 221.7248518633264, 223.4201307465249, 225.11808341377164, 226.81869564294553, \
    228.52195336242195, 230.22784264869665, 231.93634972405923, 233.64746095431508, 235.36116284655478, \
    237.07744204696908, 238.79628533870917, 240.51767963979026, 242.24161200103782, 243.96806960407542, \
    245.69703975935295, 247.42850990421414, 249.1624676010027, 250.898900535206, 252.63779651363512, \
    254.37914346264085, 256.1229294263642, 257.8691425650211, 259.6177711532202, 261.3688035783131, \
    263.1222283387757, 264.8780340426212, 266.6362094058424, 268.39674325088384, 270.15962450514246, \
    271.92484219949637, 273.6923854668608, 275.46224354077117, 277.2344057539919, 279.00886153715095, \
    280.78560041739905, 282.56461201709396, 284.34588605250747, 286.12941233255685, 287.91518075755823, \
    289.7031813180026, 291.4934040933533, 293.28583925086554, 295.0804770444254, 296.8773078134106, \
    298.67632198157025, 300.4775100559244, 302.28086262568274, 304.0863703611814, 305.89402401283905, \
    307.7038144101298, 309.5157324605739, 311.32976914874604, 313.1459155352997, 314.9641627560082, \
    316.78450202082183, 318.6069246129408, 320.4314218879031, 322.25798527268813, 324.08660626483436, \
    325.917276431572, 327.74998740896973, 329.58473090109504, 331.42149867918835, 333.2602825808507, \
    335.10107450924374, 336.9438664323036, 338.7886503819662, 340.63541845340563, 342.4841628042843, \
    344.3348756540148
// clang-format on
constexpr int kTableSize = 256;

#if defined(__CUDACC__) || defined(__HIPCC__)
static __constant__ double kDebyeUDevice[91] = {HVAE_DEBYE_U_VALUES};
static __constant__ double kDebyeWDevice[78] = {HVAE_DEBYE_W_VALUES};
static __constant__ double kLgammaHalfDevice[kTableSize] = {HVAE_LGAMMA_HALF_VALUES};
static __constant__ double kMinusLogAreaDevice[kTableSize] = {HVAE_MINUS_LOG_AREA_VALUES};
#endif
static constexpr double kDebyeUHost[91] = {HVAE_DEBYE_U_VALUES};
static constexpr double kDebyeWHost[78] = {HVAE_DEBYE_W_VALUES};
static constexpr double kLgammaHalfHost[kTableSize] = {HVAE_LGAMMA_HALF_VALUES};
static constexpr double kMinusLogAreaHost[kTableSize] = {HVAE_MINUS_LOG_AREA_VALUES};
#undef HVAE_DEBYE_U_VALUES
#undef HVAE_DEBYE_W_VALUES
#undef HVAE_LGAMMA_HALF_VALUES
#undef HVAE_MINUS_LOG_AREA_VALUES

HVAE_HD const double* debye_u() {
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  return kDebyeUDevice;
#else
  return kDebyeUHost;
#endif
}
HVAE_HD const double* debye_w() {
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  return kDebyeWDevice;
#else
  return kDebyeWHost;
#endif
}

HVAE_HD const double* lgamma_half_table() {
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  return kLgammaHalfDevice;
#else
  return kLgammaHalfHost;
#endif
}
HVAE_HD const double* minus_log_area_table() {
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  return kMinusLogAreaDevice;
#else
  return kMinusLogAreaHost;
#endif
}

// lgamma(y) for y >= 1/2; a table lookup when 2y is an integer <= 256.
HVAE_HD double lgamma_pos(double y) {
  const double n = 2.0 * y;
  if (n <= static_cast<double>(kTableSize) && n == ::floor(n)) return lgamma_half_table()[static_cast<int>(n) - 1];
  return ::lgamma(y);
}

// -log|S^{d-1}| = lgamma(d/2) - log 2 - (d/2) log pi, d >= 1; a table lookup for integer d <= 256.
HVAE_HD double minus_log_sphere_area(double d) {
  if (d <= static_cast<double>(kTableSize) && d == ::floor(d)) return minus_log_area_table()[static_cast<int>(d) - 1];
  return ::lgamma(0.5 * d) - kLog2 - 0.5 * d * kLogPi;
}

// Number K of Debye terms (U_0..U_{K-1}, W_1..W_{K-1}) for max_p |U_K(p)|, |W_K(p)| / nu^K < 1.5e-17
// (single: < 1e-10).
HVAE_HD int debye_terms(double nu, bool single) {
  if (single) {
    return nu >= 1759.0  ? 3
           : nu >= 272.0 ? 4
           : nu >= 89.0  ? 5
           : nu >= 42.0  ? 6
           : nu >= 26.0  ? 7
           : nu >= 19.0  ? 8
           : nu >= 15.0  ? 9
           : nu >= 12.6  ? 10
           : nu >= 11.1  ? 11
           : nu >= 10.05 ? 12
                         : 13;
  }
  return nu >= 13788.0  ? 4
         : nu >= 2050.0 ? 5
         : nu >= 576.0  ? 6
         : nu >= 240.0  ? 7
         : nu >= 134.0  ? 8
         : nu >= 86.0   ? 9
         : nu >= 61.0   ? 10
         : nu >= 47.0   ? 11
         : nu >= 38.0   ? 12
                        : 13;
}

// Region S bounds (see the comment at the top).
HVAE_HD double series_max_x(double mu) { return 48.0 - 0.75 * mu; }  // mu < kDebyeMinOrder
HVAE_HD double series_max_q(double mu) {                             // mu >= kDebyeMinOrder
  return (mu >= 500.0 ? 0.25 : mu >= 100.0 ? 0.5 : 1.0) * (mu + 1.0);
}
// Region H bound (mu < kDebyeMinOrder).
HVAE_HD double hankel_min_x(double mu) {
  const double a = 0.64 * mu * mu;
  return a > 20.0 ? a : 20.0;
}

// Region H bound for single (mu < kDebyeMinOrderSingle): Hankel within 24 terms of 1e-10, cancellation
// below 100; below it the series needs at most 26 terms.
HVAE_HD double hankel_min_x_single(double mu) {
  const double a = 0.225 * mu * mu, b = 11.5 + 0.25 * mu;
  return a > b ? a : b;
}

enum Region { kSeries = 0, kHankel = 1, kDebye = 2, kRecurrence = 3 };

HVAE_HD int region_of(double mu, double x, bool single) {
  if (single) {
    if (mu < kDebyeMinOrderSingle) return x >= hankel_min_x_single(mu) ? kHankel : kSeries;
    return 0.25 * x * x <= 0.25 * (mu + 1.0) ? kSeries : kDebye;
  }
  if (mu < kDebyeMinOrder) {
    if (x >= hankel_min_x(mu)) return kHankel;
    return x <= series_max_x(mu) ? kSeries : kRecurrence;
  }
  return 0.25 * x * x <= series_max_q(mu) ? kSeries : kDebye;
}

// ---- Region S -------------------------------------------------------------------------------------
// log S, S = sum_{k>=0} t_k, t_k = q^k / (k! (mu+1)_k), and (if kRatio) I_{mu+1}(x)/I_mu(x) =
// (2/x) sum_k k t_k / S. In scaled form, with r = 1/(mu+1), Q = q r and D_j = j (mu+j) r = j + j(j-1) r
// (no overflow for any mu), t_k = prod_{j<=k} Q / D_j; the loop runs over b_k = t_k / Q (b_1 = 1/D_1 = 1),
// so that nothing underflows for tiny x, four terms per step with one division:
// with g = 1/(D_k D_{k+1} D_{k+2} D_{k+3}),  b_{k+i} = (b_{k-1} Q) Q^i g D_{k+i+1} ... D_{k+3}.
// Then S = 1 + Q sum b_k and I_{mu+1}/I_mu = (x/2) r sum_k k b_k / S.
// One step of the loop: terms k .. k+3 (k = 1, 5, 9, ...) added to *sb (and k b_k to *skb), *b advanced;
// returns b_{k+3}, for the stopping test b_{k+3} <= tol sb. Shared with the CPU backward's loop over many
// x at once (cpu/mean_resultant_rows.h), which must give the same bits.
template <bool kRatio>
HVAE_HD_HOT double series_step(int k, double r, double q, double q2, double q3, double* b, double* sb, double* skb) {
  const double k0 = static_cast<double>(k), k1 = k0 + 1.0, k2 = k0 + 2.0, k3 = k0 + 3.0;
  const double d0 = k0 + k0 * (k0 - 1.0) * r, d1 = k1 + k1 * k0 * r;
  const double d2 = k2 + k2 * k1 * r, d3 = k3 + k3 * k2 * r;
  const double d23 = d2 * d3;
  const double bg = *b / ((d0 * d1) * d23);
  const double b0 = bg * (d1 * d23), b1 = bg * (q * d23), b2 = bg * (q2 * d3), b3 = bg * q3;
  *sb += (b0 + b1) + (b2 + b3);
  if (kRatio) *skb += (k0 * b0 + k1 * b1) + (k2 * b2 + k3 * b3);
  *b = b3 * q;
  return b3;
}
// I_{mu+1}(x)/I_mu(x) = (x/2) r sum_k k b_k / S from the finished sums.
HVAE_HD_HOT double series_ratio(double x, double r, double q, double sb, double skb) {
  return (0.5 * x * r) * skb / (1.0 + q * sb);
}
template <bool kRatio>
HVAE_HD double series_log_sum(double mu, double x, double tol, double* ratio) {
  const double r = 1.0 / (mu + 1.0);
  const double q = 0.25 * x * x * r, q2 = q * q, q3 = q2 * q;
  double b = 1.0, sb = 0.0, skb = 0.0;  // b = b_{k-1} Q (1 for k = 1)
  for (int k = 1; k <= kMaxSeriesTerms; k += 4) {
    const double b3 = series_step<kRatio>(k, r, q, q2, q3, &b, &sb, &skb);
    if (b3 <= tol * sb) break;
  }
  if (kRatio) *ratio = series_ratio(x, r, q, sb, skb);
  return ::log(1.0 + q * sb);
}

// ---- Region H -------------------------------------------------------------------------------------
// log T and (if kRatio) I_{mu+1}(x)/I_mu(x), T = sum_k t_k, t_k = (-1)^k a_k(mu) / x^k. The ratio is the
// derivative of the expansion: I_{mu+1}/I_mu = (log I_mu)' - mu/x (DLMF 10.29.2) with
// log I_mu = x - log(2 pi x)/2 + log T and x T' = -sum_k k t_k, so
//   I_{mu+1}(x)/I_mu(x) = 1 - (mu + 1/2)/x - sum_k k t_k / (x T),
// where (mu + 1/2)/x <= 0.3 and the last term is O(mu^2/x^2) in region H: nothing cancels.
// Term k is term k-1 times (4 mu^2 - (2k-1)^2) c / k with c = -1/(8x); four terms per step with one
// division: c / (k+i) = cg prod_{j != i} (k+j) with cg = c / (k (k+1) (k+2) (k+3)).
// With tail (kRatio), also sum_k k t_k / T, so that 1 - I_{mu+1}/I_mu = (mu + 1/2 + tail) / x without cancellation.
template <bool kRatio>
HVAE_HD double hankel_log_sum(double mu, double x, double tol, double* ratio, double* tail = nullptr) {
  const double m = 4.0 * mu * mu;
  const double minus_8x = -8.0 * x;
  double t = 1.0, sum = 1.0, sum_k = 0.0;
  for (int k = 1; k < kMaxHankelTerms; k += 4) {
    const double k0 = static_cast<double>(k), k1 = k0 + 1.0, k2 = k0 + 2.0, k3 = k0 + 3.0;
    const double k01 = k0 * k1, k23 = k2 * k3;
    const double cg = 1.0 / (minus_8x * (k01 * k23));
    const double f0 = (m - (2.0 * k0 - 1.0) * (2.0 * k0 - 1.0)) * (cg * (k1 * k23));
    const double f1 = (m - (2.0 * k1 - 1.0) * (2.0 * k1 - 1.0)) * (cg * (k0 * k23));
    const double f2 = (m - (2.0 * k2 - 1.0) * (2.0 * k2 - 1.0)) * (cg * (k01 * k3));
    const double f3 = (m - (2.0 * k3 - 1.0) * (2.0 * k3 - 1.0)) * (cg * (k01 * k2));
    const double f01 = f0 * f1, f012 = f01 * f2;
    const double u0 = t * f0, u1 = t * f01, u2 = t * f012;
    t *= f012 * f3;
    sum += (u0 + u1) + (u2 + t);
    if (kRatio) sum_k += (k0 * u0 + k1 * u1) + (k2 * u2 + k3 * t);
    if (::fabs(t) <= tol * sum) break;
  }
  if (kRatio) *ratio = (1.0 - (mu + 0.5) / x) - sum_k / (x * sum);
  if (kRatio && tail) *tail = sum_k / sum;
  return ::log(sum);
}

// ---- Region D -------------------------------------------------------------------------------------
// sum_{k<K} U_k(p) / nu^k and (if kW) sum_{1<=k<K} W_k(p) / nu^k, U_k(p) = (p/nu)^k P_k(p^2), with
// compile-time K so that the K Horner chains are unrolled and overlap.
template <int K, bool kW>
HVAE_HD void debye_sums_k(double p2, double step, double* su, double* sw, double* su_tail = nullptr,
                          double* sw_tail = nullptr) {
  const double* u = debye_u();
  const double* w = debye_w();
  double scale = 1.0, acc_u = 0.0, acc_w = 0.0, acc_w1 = 0.0;  // acc_u: k >= 1; acc_w: k >= 2; acc_w1: k = 1
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int k = 1; k < K; ++k) {
    scale *= step;
    const double* uk = u + k * (k + 1) / 2;
    double pu = uk[k];
#if defined(__CUDACC__)
#pragma unroll
#endif
    for (int j = k - 1; j >= 0; --j) pu = pu * p2 + uk[j];
    acc_u += scale * pu;
    if (kW) {
      const double* wk = w + (k - 1) * k / 2;
      double pw = wk[k - 1];
#if defined(__CUDACC__)
#pragma unroll
#endif
      for (int j = k - 2; j >= 0; --j) pw = pw * p2 + wk[j];
      if (k == 1) {
        acc_w1 = scale * pw;
      } else {
        acc_w += scale * pw;
      }
    }
  }
  *su = 1.0 + acc_u;
  *sw = acc_w1 + acc_w;
  if (su_tail) *su_tail = acc_u;  // sum_{k>=1} U_k / nu^k
  if (sw_tail) *sw_tail = acc_w;  // sum_{k>=2} W_k / nu^k
}

template <bool kW>
HVAE_HD void debye_sums(double nu, bool single, double p2, double step, double* su, double* sw,
                        double* su_tail = nullptr, double* sw_tail = nullptr) {
  switch (debye_terms(nu, single)) {
    case 3:
      debye_sums_k<3, kW>(p2, step, su, sw, su_tail, sw_tail);
      return;
    case 4:
      debye_sums_k<4, kW>(p2, step, su, sw, su_tail, sw_tail);
      return;
    case 5:
      debye_sums_k<5, kW>(p2, step, su, sw, su_tail, sw_tail);
      return;
    case 6:
      debye_sums_k<6, kW>(p2, step, su, sw, su_tail, sw_tail);
      return;
    case 7:
      debye_sums_k<7, kW>(p2, step, su, sw, su_tail, sw_tail);
      return;
    case 8:
      debye_sums_k<8, kW>(p2, step, su, sw, su_tail, sw_tail);
      return;
    case 9:
      debye_sums_k<9, kW>(p2, step, su, sw, su_tail, sw_tail);
      return;
    case 10:
      debye_sums_k<10, kW>(p2, step, su, sw, su_tail, sw_tail);
      return;
    case 11:
      debye_sums_k<11, kW>(p2, step, su, sw, su_tail, sw_tail);
      return;
    case 12:
      debye_sums_k<12, kW>(p2, step, su, sw, su_tail, sw_tail);
      return;
    default:
      debye_sums_k<13, kW>(p2, step, su, sw, su_tail, sw_tail);
      return;
  }
}

struct Debye {
  double log_sum;          // log sum_k U_k(p) / nu^k
  double ratio;            // I_{nu+1}(x) / I_nu(x) (if requested)
  double log_s;            // log sqrt(1 + z^2)
  double e;                // sqrt(1 + z^2) - log(1 + sqrt(1 + z^2)), so that eta = e + log z
  double z, s;             // z = x / nu, s = sqrt(1 + z^2)
  double one_minus_ratio;  // 1 - I_{nu+1}(x) / I_nu(x) (if the ratio is requested), without cancellation
  // x (1 - I_{nu+1}/I_nu) - (nu + 1/2) (if the ratio is requested), without cancellation for large z:
  // -nu / (s + z) + (-p^2/2 - U_tail/2 - nu z^2 p W_tail) / sum U, from W_1 / nu = -p^2 / (2 nu) (the k >= 2
  // part of sum W is W_tail, the k >= 1 part of sum U is U_tail) and 1 - z^2 p^2 = p^2.
  double u;
};

template <bool kRatio>
HVAE_HD Debye debye(double nu, double x, bool single) {
  const double z = x / nu;
  // s = sqrt(1 + z^2) without overflow of z^2 (for z > 1e150, 1 + z^-2 rounds to 1).
  const double s = z < 1e150 ? ::sqrt(1.0 + z * z) : z;
  const double p = 1.0 / s;
  double su, sw, su_tail, sw_tail;
  debye_sums<kRatio>(nu, single, p * p, p / nu, &su, &sw, &su_tail, &sw_tail);
  Debye out;
  out.log_sum = ::log(su);
  out.ratio = kRatio ? z / (1.0 + s) + z * p * sw / su : 0.0;
  // 1 - z / (1 + s) = (1 + s - z) / (1 + s) with s - z = 1 / (s + z); sw < 0, so both terms are positive.
  out.one_minus_ratio = kRatio ? (1.0 + 1.0 / (s + z)) / (1.0 + s) - z * p * sw / su : 0.0;
  out.z = z;
  out.s = s;
  out.u = kRatio ? -nu / (s + z) + (-0.5 * (p * p + su_tail) - nu * z * (z * p) * sw_tail) / su : 0.0;
  out.log_s = ::log(s);
  out.e = s - ::log(1.0 + s);
  return out;
}

// The root z0 of eta(z) (eta(z0) = 0) as hi + lo, and the Taylor coefficients c_1..c_25 of eta at z0
// (mpmath, 50 digits): eta(z0 + t) = t sum_k c_k t^(k-1), truncation < 5e-18 relative for |t| <= 0.15.
constexpr double kEtaRootHi = 0.6627434193491816;
constexpr double kEtaRootLo = 8.155323790501267e-18;
constexpr double kEtaBand = 0.15;
constexpr int kEtaTerms = 25;

// nu * eta(x / nu). eta(z) = sqrt(1+z^2) + log(z / (1 + sqrt(1+z^2))) is a difference of two O(1)
// terms that cancel at z0 = 0.66274...; there nu * eta is small against nu and the direct formula
// would leave an absolute error ~ nu * eps (3e-13 relative for log I_{5e4}). In the band
// |z - z0| <= 0.15 it is summed as a Taylor series in t = z - z0 instead, with
// nu t = x - nu z0 formed exactly (nu z0 as an unevaluated sum by fma; x - nu*z0_hi is exact by
// Sterbenz's lemma), so nu * eta has a relative error of a few ulps. Outside the band |eta| >= 0.25
// and the direct formula is accurate to ~2e-15 relative.
HVAE_HD double debye_nu_eta(double nu, double x, double e, bool single) {
  const double z = x / nu;
  if (!single && ::fabs(z - kEtaRootHi) <= kEtaBand) {
    const double c[kEtaTerms] = {
        1.8101705806989772,  -0.948886416256837,  1.1001528948506503,  -1.2953006779860539, 1.5715455665619724,
        -1.9710295801345066, 2.5442226725502084,  -3.3574176889619283, 4.503639745039154,   -6.116916154170854,
        8.391114712091305,   -11.606012767320623, 16.16472543589419,   -22.648266391101256, 31.895268490233818,
        -45.1183158825841,   64.07357479975221,   -91.30824550094451,  130.52190238409395,  -187.09471362813002,
        268.8603633821991,   -387.2380100873396,  558.8913763647615,   -808.1622886581259,  1170.6427751220237};
    const double p = nu * kEtaRootHi;
    const double p_err = ::fma(nu, kEtaRootHi, -p);
    const double nu_t = ((x - p) - p_err) - nu * kEtaRootLo;
    const double t = nu_t / nu;
    double poly = c[kEtaTerms - 1];
#if defined(__CUDACC__)
#pragma unroll
#endif
    for (int k = kEtaTerms - 2; k >= 0; --k) poly = poly * t + c[k];
    return nu_t * poly;
  }
  return nu * (e + ::log(z));
}

// log I_nu(x) from the Debye pieces: nu eta - log(2 pi nu)/2 - log(1+z^2)/4 + log sum.
HVAE_HD double debye_log_iv(double nu, double x, const Debye& db, bool single) {
  return debye_nu_eta(nu, x, db.e, single) - 0.5 * (kLog2Pi + ::log(nu)) - 0.5 * db.log_s + db.log_sum;
}

// ---- Region R -------------------------------------------------------------------------------------
// log I_mu(x) and (if kRatio) I_{mu+1}(x) / I_mu(x), for mu in [-1/2, kDebyeMinOrder), by the downward
// recurrence from order top = mu + ceil(kDebyeMinOrder - mu) <= mu + 33. Only used for
// x >= series_max_x(mu) >= 24, where each step multiplies y by at most 2k/x + 1 < 4 (no overflow).
template <bool kRatio>
HVAE_HD double recurrence_log_iv(double mu, double x, bool single, double* ratio) {
  const double n = ::ceil(debye_min_order(single) - mu);
  const double top = mu + n;
  const Debye db = debye<true>(top, x, single);
  const double two_over_x = 2.0 / x;
  double y0 = 1.0, y1 = db.ratio;  // y_k, y_{k+1} at k = top
  double k = top;
  const int steps = static_cast<int>(n);
  for (int i = 0; i < steps && i < 40; ++i) {
    const double y = (k * two_over_x) * y0 + y1;  // y_{k-1}
    y1 = y0;
    y0 = y;
    k -= 1.0;
  }
  if (kRatio) *ratio = y1 / y0;
  return debye_log_iv(top, x, db, single) + ::log(y0);
}

// log I_mu(x) (if kLog) and (if kRatio) I_{mu+1}(x) / I_mu(x), for mu >= -1/2 (mu >= 0 if kLog), finite
// x > 0.
template <bool kLog, bool kRatio>
HVAE_HD double log_iv_and_ratio(double mu, double x, bool single, double* ratio) {
  switch (region_of(mu, x, single)) {
    case kSeries: {
      const double log_s = series_log_sum<kRatio>(mu, x, tolerance(single), ratio);
      return kLog ? mu * (::log(x) - kLog2) - lgamma_pos(mu + 1.0) + log_s : 0.0;
    }
    case kHankel: {
      const double log_s = hankel_log_sum<kRatio>(mu, x, tolerance(single), ratio);
      return kLog ? x - 0.5 * (kLog2Pi + ::log(x)) + log_s : 0.0;
    }
    case kRecurrence:
      return recurrence_log_iv<kRatio>(mu, x, single, ratio);
    default: {
      const Debye db = debye<kRatio>(mu, x, single);
      if (kRatio) *ratio = db.ratio;
      return kLog ? debye_log_iv(mu, x, db, single) : 0.0;
    }
  }
}

// log C_d(kappa) and (if kGrad) A_d(kappa), for d >= 2 finite, kappa > 0 finite.
template <bool kGrad>
HVAE_HD double vmf_log_normalizer_impl(double kappa, double d, bool single, double* mean_resultant) {
  const double mu = 0.5 * d - 1.0;
  switch (region_of(mu, kappa, single)) {
    case kSeries:
      // -log|S^{d-1}| - log S: no cancellation as kappa -> 0.
      return minus_log_sphere_area(d) - series_log_sum<kGrad>(mu, kappa, tolerance(single), mean_resultant);
    case kHankel: {
      const double log_k = ::log(kappa);
      return mu * log_k - 0.5 * d * kLog2Pi - kappa + 0.5 * (kLog2Pi + log_k) -
             hankel_log_sum<kGrad>(mu, kappa, tolerance(single), mean_resultant);
    }
    case kRecurrence:
      return mu * ::log(kappa) - 0.5 * d * kLog2Pi - recurrence_log_iv<kGrad>(mu, kappa, single, mean_resultant);
    default: {
      // mu log kappa - log I_mu(kappa), with mu log kappa - mu log z = mu log mu done analytically.
      const Debye db = debye<kGrad>(mu, kappa, single);
      if (kGrad) *mean_resultant = db.ratio;
      const double log_mu = ::log(mu);
      return -0.5 * d * kLog2Pi - mu * (db.e - log_mu) + 0.5 * (kLog2Pi + log_mu) + 0.5 * db.log_s - db.log_sum;
    }
  }
}

}  // namespace detail

// Every public function takes `single`: true when the result will be rounded to float32, which allows
// the cheaper truncations of the `single` parameters above (results within 1e-9 relative of the float64
// path; measured float32 errors in docs/special_functions.md).

// log I_v(x) for v >= 0, x >= 0.
HVAE_HD double log_bessel_iv(double v, double x, bool single = false) {
  if (!(v >= 0.0) || !(x >= 0.0)) return quiet_nan();  // also NaN
  if (x == 0.0) return v == 0.0 ? 0.0 : -infinity();
  if (is_inf(x)) return is_inf(v) ? quiet_nan() : infinity();
  if (is_inf(v)) return -infinity();
  return detail::log_iv_and_ratio<true, false>(v, x, single, nullptr);
}

// R_v(x) = I_v(x) / I_{v-1}(x) for v >= 1/2, x >= 0.
HVAE_HD double bessel_iv_ratio(double v, double x, bool single = false) {
  if (!(v >= 0.5) || !(x >= 0.0)) return quiet_nan();
  if (x == 0.0) return is_inf(v) ? quiet_nan() : 0.0;
  if (is_inf(x)) return is_inf(v) ? quiet_nan() : 1.0;
  if (is_inf(v)) return 0.0;
  double r = 0.0;
  detail::log_iv_and_ratio<false, true>(v - 1.0, x, single, &r);
  return r;
}

// R_v'(x) = 1 - R^2 - (2v - 1) R / x (DLMF 10.29.2), R = R_v(x), for v >= 1/2, x >= 0; 1/(2v) at x = 0. At large
// x this difference of terms of size 1 leaves (2v - 1) / (2 x^2): formed directly it has a relative error of
// x * eps (1e-4 at x = 1e12). In region H, and in region D for z = x / mu > 1 (mu = v - 1), it is summed instead
// from eps = 1 - R and u = x eps - (v - 1/2), which those regions give without cancellation:
//   x R' = x eps (2 - eps) - (2v - 1)(1 - eps) = 2u + eps (c - u),  c = v - 1/2
// (the same form as vmf.h's kappa_mean_resultant_derivative, there with v = d/2), whose terms are ~c/x.
HVAE_HD double bessel_iv_ratio_derivative(double v, double x, bool single = false) {
  if (x == 0.0) return 1.0 / (2.0 * v);
  if (v >= 0.5 && x > 0.0 && !is_inf(x) && !is_inf(v)) {
    const double mu = v - 1.0, c = v - 0.5;
    const int region = detail::region_of(mu, x, single);
    if (region == detail::kHankel) {
      double r, u;
      detail::hankel_log_sum<true>(mu, x, detail::tolerance(single), &r, &u);
      const double eps = (c + u) / x;
      return (2.0 * u + eps * (c - u)) / x;
    }
    if (region == detail::kDebye && x > mu) {
      const detail::Debye db = detail::debye<true>(mu, x, single);
      return (2.0 * db.u + db.one_minus_ratio * (c - db.u)) / x;
    }
  }
  const double r = bessel_iv_ratio(v, x, single);
  return 1.0 - r * r - (2.0 * v - 1.0) * r / x;
}

// log C_d(kappa), C_d(kappa) = kappa^{d/2-1} / ((2 pi)^{d/2} I_{d/2-1}(kappa)), d >= 2, kappa >= 0.
// log C_d(0) = -log|S^{d-1}|, log C_d(+inf) = -inf.
HVAE_HD double vmf_log_normalizer(double kappa, double d, bool single = false) {
  if (!(kappa >= 0.0) || !(d >= 2.0) || is_inf(d)) return quiet_nan();
  if (kappa == 0.0) return detail::minus_log_sphere_area(d);
  if (is_inf(kappa)) return -infinity();
  return detail::vmf_log_normalizer_impl<false>(kappa, d, single, nullptr);
}

// A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) = -d/dkappa log C_d(kappa), d >= 2, kappa >= 0.
HVAE_HD double vmf_mean_resultant(double kappa, double d, bool single = false) {
  if (!(kappa >= 0.0) || !(d >= 2.0) || is_inf(d)) return quiet_nan();
  if (kappa == 0.0) return 0.0;
  if (is_inf(kappa)) return 1.0;
  double r = 0.0;
  detail::log_iv_and_ratio<false, true>(0.5 * d - 1.0, kappa, single, &r);
  return r;
}

// log C_d(kappa) and, in *mean_resultant, A_d(kappa) = -d/dkappa log C_d(kappa), in one pass (about the
// cost of one of the two): the same values as vmf_log_normalizer and vmf_mean_resultant.
HVAE_HD double vmf_log_normalizer_and_mean_resultant(double kappa, double d, double* mean_resultant,
                                                     bool single = false) {
  if (!(kappa >= 0.0) || !(d >= 2.0) || is_inf(d)) {
    *mean_resultant = quiet_nan();
    return quiet_nan();
  }
  if (kappa == 0.0) {
    *mean_resultant = 0.0;
    return detail::minus_log_sphere_area(d);
  }
  if (is_inf(kappa)) {
    *mean_resultant = 1.0;
    return -infinity();
  }
  return detail::vmf_log_normalizer_impl<true>(kappa, d, single, mean_resultant);
}

}  // namespace math
}  // namespace hvae
