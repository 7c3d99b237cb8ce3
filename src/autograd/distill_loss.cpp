// The knowledge-distillation loss: a divergence between the teacher's and the student's softened
// distributions plus cross-entropy on the hard labels, fused and row by row.
//
// Per position, with z = student logits / T, q = softmax(z) and p the teacher's softened
// distribution, every divergence D used here has the gradient dD/dz_j = q_j (g_b(j) - sum_b Q_b
// g_b) where the sum runs over buckets b of the vocabulary (singletons for full logits; the top K
// and one tail bucket for a top-K teacher), Q_b and P_b are the bucket masses and g_b = dD/dQ_b.
// Worked out:
//   forward KL  D = sum P (log P - log Q):          dD/dz_j = q_j - q_j P_b / Q_b
//   reverse KL  D = sum Q (log Q - log P):          dD/dz_j = q_j (log Q_b - log P_b - D)
//   JSD_beta    m = beta P + (1 - beta) Q,
//               D = beta KL(P||m) + (1-beta) KL(Q||m): dD/dz_j = (1-beta) q_j (log Q_b - log m_b -
//               KL(Q||m))
// and d/ds = (1/T) d/dz, so the soft term's gradient is alpha * T * dD/dz per kept position.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/targets.hpp"
#include "scholar/autograd/ops.hpp"
#include "scholar/error.hpp"
#include "scholar/parallel.hpp"

namespace scholar::autograd {

std::string_view divergence_name(Divergence d) noexcept {
  switch (d) {
    case Divergence::forward_kl:
      return "forward_kl";
    case Divergence::reverse_kl:
      return "reverse_kl";
    case Divergence::jsd:
      return "jsd";
  }
  return "?";
}

Divergence parse_divergence(std::string_view name) {
  for (Divergence d : {Divergence::forward_kl, Divergence::reverse_kl, Divergence::jsd})
    if (name == divergence_name(d)) return d;
  fail<ValueError>("unknown divergence '", name, "' (expected forward_kl, reverse_kl or jsd)");
}

void DistillOptions::validate() const {
  if (!(temperature > 0.0f) || !std::isfinite(temperature))
    fail<ValueError>("distill_loss: temperature must be a finite number > 0, got ", temperature);
  if (!(alpha >= 0.0f && alpha <= 1.0f))
    fail<ValueError>("distill_loss: alpha must be in [0, 1], got ", alpha);
  if (!(beta >= 0.0f && beta <= 1.0f))
    fail<ValueError>("distill_loss: beta must be in [0, 1], got ", beta);
}

namespace {

constexpr double kTailFloor = 1e-12;  // tail masses are floored here where their log is taken

// A [..., W] tensor as rows of W values at a uniform stride (a view when the layout allows, as for
// logits sliced out of a padded vocabulary; a contiguous copy otherwise).
struct Rows {
  Tensor<float> keep;
  const float* data = nullptr;
  int64_t stride = 0;
  const float* row(int64_t r) const { return data + r * stride; }
};

Rows rows_of(const Tensor<float>& t) {
  const int rank = static_cast<int>(t.rank());
  bool uniform = t.stride(rank - 1) == 1;
  for (int d = 0; uniform && d + 2 < rank; ++d)
    uniform = t.size(d + 1) == 1 || t.stride(d) == t.stride(d + 1) * t.size(d + 1);
  if (uniform) return {t, t.data(), rank >= 2 ? t.stride(rank - 2) : t.size(-1)};
  Tensor<float> c = t.contiguous();
  return {c, c.data(), t.size(-1)};
}

// What the forward pass found for one kept position (the backward pass reuses it).
struct RowStats {
  double soft = 0;   // D
  double hard = 0;   // cross-entropy at T = 1
  double aux = 0;    // reverse KL: D; JSD: KL(Q || m)
  double qtail = 0;  // top K: the student's tail mass at T
  double ptail = 0;  // top K: the teacher's tail mass
};

double safe_log(double v) {
  return std::log(std::max(v, kTailFloor));
}

}  // namespace

Var distill_loss(const Var& student_logits, const SoftTargets& teacher,
                 const Tensor<int32_t>& targets, const DistillOptions& options,
                 DistillTerms* terms) {
  options.validate();
  if (!student_logits.defined()) fail<ValueError>("distill_loss: student logits are undefined");
  const Tensor<float>& lv = student_logits.value();
  if (lv.rank() < 2)
    fail<ShapeError>("distill_loss: student logits must be [N, V] or [B, T, V], got ",
                     lv.shape().str());
  const int64_t V = lv.size(-1);
  Shape lead = lv.shape();
  lead.erase(lead.rank() - 1);
  if (!(targets.shape() == lead))
    fail<ShapeError>("distill_loss: student logits ", lv.shape().str(), " need targets of shape ",
                     lead.str(), ", got ", targets.shape().str());
  const bool top = teacher.is_top_k();
  int64_t K = 0;
  Rows trows;
  Tensor<int32_t> ids;
  if (top) {
    if (!teacher.top_log_probs.defined() || teacher.top_ids.rank() != lead.rank() + 1 ||
        !(teacher.top_ids.shape() == teacher.top_log_probs.shape()))
      fail<ShapeError>("distill_loss: top-K ids ", teacher.top_ids.shape().str(),
                       " and log-probabilities ",
                       teacher.top_log_probs.defined() ? teacher.top_log_probs.shape().str()
                                                       : std::string("(undefined)"),
                       " must both be ", lead.str(), " + [K]");
    K = teacher.top_ids.size(-1);
    Shape want = teacher.top_ids.shape();
    want.erase(want.rank() - 1);
    if (!(want == lead))
      fail<ShapeError>("distill_loss: top-K teacher ", teacher.top_ids.shape().str(),
                       " does not cover the student's positions ", lead.str());
    ids = teacher.top_ids.contiguous();
    trows = rows_of(teacher.top_log_probs);
  } else {
    if (!teacher.logits.defined())
      fail<ValueError>("distill_loss: the teacher gives neither logits nor top-K ids");
    if (!(teacher.logits.shape() == lv.shape()))
      fail<ShapeError>("distill_loss: teacher logits ", teacher.logits.shape().str(),
                       " differ from the student's ", lv.shape().str(),
                       " (the same positions and vocabulary are needed)");
    trows = rows_of(teacher.logits);
  }
  const Tensor<float> x = lv.contiguous();
  const Tensor<int32_t> t = targets.contiguous();
  const int64_t N = t.numel();
  const int32_t ignore = options.ignore_index;
  const int64_t kept = detail::kept_targets(t.data(), N, V, ignore, "distill_loss");

  // The divergence actually computed (TRL's special cases of the JSD at beta 0 and 1).
  Divergence div = options.divergence;
  if (div == Divergence::jsd && options.beta == 0.0f) div = Divergence::forward_kl;
  if (div == Divergence::jsd && options.beta == 1.0f) div = Divergence::reverse_kl;
  const double beta = options.beta;
  const float T = options.temperature, inv_t = 1.0f / T;

  std::vector<RowStats> stats(static_cast<size_t>(N));
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(V, 1));
  const kernels::KernelTable& k = kernels::active();
  parallel_for(0, N, grain, [&](int64_t b, int64_t e) {
    const size_t Vs = static_cast<size_t>(V);
    std::vector<float> z(Vs), lq(Vs), q, lp, p;
    std::vector<int64_t> seen;  // top K: the last row that used each id
    if (top) {
      seen.assign(Vs, -1);
    } else {
      q.resize(Vs), lp.resize(Vs), p.resize(Vs);
    }
    for (int64_t r = b; r < e; ++r) {
      const int32_t target = t.data()[r];
      if (target == ignore) continue;
      RowStats& st = stats[static_cast<size_t>(r)];
      const float* s = x.data() + r * V;
      k.scale(z.data(), s, inv_t, Vs);
      k.log_softmax(lq.data(), z.data(), Vs);
      if (!top) k.softmax(q.data(), z.data(), Vs);
      if (T == 1.0f) {
        st.hard = -double{lq[static_cast<size_t>(target)]};
      } else {
        k.log_softmax(z.data(), s, Vs);
        st.hard = -double{z[static_cast<size_t>(target)]};
      }
      if (!top) {
        k.scale(z.data(), trows.row(r), inv_t, Vs);
        k.log_softmax(lp.data(), z.data(), Vs);
        k.softmax(p.data(), z.data(), Vs);
        double d = 0, a = 0;
        if (div == Divergence::forward_kl) {
          for (size_t i = 0; i < Vs; ++i) d += double{p[i]} * (double{lp[i]} - double{lq[i]});
        } else if (div == Divergence::reverse_kl) {
          for (size_t i = 0; i < Vs; ++i) d += double{q[i]} * (double{lq[i]} - double{lp[i]});
          a = d;
        } else {
          for (size_t i = 0; i < Vs; ++i) {
            const double pi = p[i], qi = q[i];
            const double lm = std::log(beta * pi + (1 - beta) * qi);
            const double kp = pi > 0 ? pi * (double{lp[i]} - lm) : 0.0;
            const double kq = qi > 0 ? qi * (double{lq[i]} - lm) : 0.0;
            d += beta * kp + (1 - beta) * kq;
            a += kq;
          }
        }
        st.soft = d;
        st.aux = a;
        continue;
      }
      // Top K: K singleton buckets and the tail.
      const int32_t* id = ids.data() + r * K;
      const float* lpk = trows.row(r);
      double psum = 0, qsum = 0;
      for (int64_t j = 0; j < K; ++j) {
        if (id[j] == -1) continue;
        if (id[j] < 0 || id[j] >= V)
          fail<IndexError>("distill_loss: top-K id ", id[j], " at position ", r, " slot ", j,
                           " is outside [0, ", V, ")");
        if (seen[static_cast<size_t>(id[j])] == r)
          fail<ValueError>("distill_loss: top-K id ", id[j], " appears twice at position ", r);
        seen[static_cast<size_t>(id[j])] = r;
        if (!(lpk[j] <= 1e-4f))
          fail<ValueError>("distill_loss: top-K log-probability ", lpk[j], " at position ", r,
                           " slot ", j, " is not a log-probability (must be <= 0)");
        psum += std::exp(double{lpk[j]});
        qsum += std::exp(double{lq[static_cast<size_t>(id[j])]});
      }
      if (psum > 1.0 + 1e-3)
        fail<ValueError>("distill_loss: the top-K probabilities at position ", r, " sum to ", psum,
                         " > 1: not log-probabilities at temperature ", T, "?");
      const double pt = std::max(0.0, 1.0 - psum), qt = std::max(0.0, 1.0 - qsum);
      st.ptail = pt;
      st.qtail = qt;
      double d = 0, a = 0;
      auto bucket = [&](double P, double lP, double Q, double lQ) {
        if (div == Divergence::forward_kl) {
          if (P > 0) d += P * (lP - lQ);
        } else if (div == Divergence::reverse_kl) {
          if (Q > 0) d += Q * (lQ - lP);
        } else {
          const double lm = std::log(beta * P + (1 - beta) * Q);
          const double kq = Q > 0 ? Q * (lQ - lm) : 0.0;
          d += (P > 0 ? beta * P * (lP - lm) : 0.0) + (1 - beta) * kq;
          a += kq;
        }
      };
      for (int64_t j = 0; j < K; ++j) {
        if (id[j] == -1) continue;
        const double lQ = lq[static_cast<size_t>(id[j])];
        bucket(std::exp(double{lpk[j]}), double{lpk[j]}, std::exp(lQ), lQ);
      }
      bucket(pt, safe_log(pt), qt, safe_log(qt));
      st.soft = d;
      st.aux = div == Divergence::reverse_kl ? d : a;
    }
  });
  double soft = 0, hard = 0;
  for (const RowStats& st : stats) soft += st.soft, hard += st.hard;
  soft /= static_cast<double>(kept);
  hard /= static_cast<double>(kept);
  if (terms) *terms = {soft, hard};
  const double alpha = options.alpha;
  const double total = alpha * double{T} * double{T} * soft + (1 - alpha) * hard;
  Tensor<float> loss = Tensor<float>::scalar(static_cast<float>(total));

  return make_result(
      std::move(loss), Op::distill, {student_logits},
      [student_logits, x, t, ids, trows, stats = std::move(stats), top, div, beta, T, inv_t, alpha,
       ignore, kept, N, V, K, grain](const Tensor<float>& g) {
        const double gk = double{g.item()} / static_cast<double>(kept);
        const float cs = static_cast<float>(gk * alpha * T);  // soft: alpha T^2 * (1/T) d/dz
        const float ch = static_cast<float>(gk * (1 - alpha));
        Tensor<float> dx = Tensor<float>::empty(x.shape());
        const kernels::KernelTable& k = kernels::active();
        parallel_for(0, N, grain, [&](int64_t b, int64_t e) {
          const size_t Vs = static_cast<size_t>(V);
          std::vector<float> z(Vs), q(Vs), sm, lp, p;
          if (T != 1.0f) sm.resize(Vs);
          if (!top) lp.resize(Vs), p.resize(Vs);
          for (int64_t r = b; r < e; ++r) {
            float* d = dx.data() + r * V;
            const int32_t target = t.data()[r];
            if (target == ignore) {
              std::fill_n(d, V, 0.0f);
              continue;
            }
            const RowStats& st = stats[static_cast<size_t>(r)];
            const float* s = x.data() + r * V;
            k.scale(z.data(), s, inv_t, Vs);
            k.softmax(q.data(), z.data(), Vs);
            if (!top) {
              k.scale(z.data(), trows.row(r), inv_t, Vs);
              if (div == Divergence::forward_kl) {
                k.softmax(p.data(), z.data(), Vs);
                k.sub(d, q.data(), p.data(), Vs);
                k.scale(d, d, cs, Vs);
              } else {
                k.log_softmax(lp.data(), z.data(), Vs);
                if (div == Divergence::jsd) k.softmax(p.data(), z.data(), Vs);
                k.scale(z.data(), s, inv_t, Vs);
                k.log_softmax(z.data(), z.data(), Vs);  // in place: z = log q
                if (div == Divergence::reverse_kl) {
                  const float c = static_cast<float>(st.aux);
                  for (size_t i = 0; i < Vs; ++i) d[i] = cs * q[i] * (z[i] - lp[i] - c);
                } else {
                  const double c = st.aux;
                  for (size_t i = 0; i < Vs; ++i) {
                    const double lm = std::log(beta * double{p[i]} + (1 - beta) * double{q[i]});
                    d[i] = static_cast<float>(double{cs} * (1 - beta) * double{q[i]} *
                                              (double{z[i]} - lm - c));
                  }
                }
              }
            } else {
              // Every id starts as a tail member; the top K are then overwritten.
              double ct = 0;
              if (div == Divergence::forward_kl) {
                ct = st.qtail > 0 ? 1.0 - st.ptail / st.qtail : 0.0;
              } else if (div == Divergence::reverse_kl) {
                ct = safe_log(st.qtail) - safe_log(st.ptail) - st.aux;
              } else {
                const double m = beta * st.ptail + (1 - beta) * st.qtail;
                ct = st.qtail > 0 ? (1 - beta) * (std::log(st.qtail) - std::log(m) - st.aux) : 0.0;
              }
              k.scale(d, q.data(), static_cast<float>(double{cs} * ct), Vs);
              const int32_t* id = ids.data() + r * K;
              const float* lpk = trows.row(r);
              for (int64_t j = 0; j < K; ++j) {
                if (id[j] == -1) continue;
                const size_t i = static_cast<size_t>(id[j]);
                const double qi = q[i], P = std::exp(double{lpk[j]});
                double v = 0;
                if (div == Divergence::forward_kl) {
                  v = qi - P;
                } else if (qi > 0) {
                  const double lQ = std::log(qi);
                  if (div == Divergence::reverse_kl)
                    v = qi * (lQ - double{lpk[j]} - st.aux);
                  else
                    v = (1 - beta) * qi * (lQ - std::log(beta * P + (1 - beta) * qi) - st.aux);
                }
                d[i] = static_cast<float>(double{cs} * v);
              }
            }
            if (ch != 0.0f) {
              const float* soft_max = q.data();
              if (T != 1.0f) {
                k.softmax(sm.data(), s, Vs);
                soft_max = sm.data();
              }
              k.axpy(d, ch, soft_max, Vs);
              d[target] -= ch;
            }
          }
        });
        student_logits.accumulate_owned_grad(dx.reshape(student_logits.shape()));
      });
}

}  // namespace scholar::autograd
