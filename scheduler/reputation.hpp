// Reputation: how far the scheduler trusts a provider's node, in [0, 1], from what the runtime observes.
// Assumptions: outcomes are reported by the head (which sees leases end, nodes die and verifications
// finish); a node starts at the reputation its operator declares (default 1.0 for the operator's own nodes,
// lower for newcomers).
// Rule: each outcome moves the score towards a target by a step:  r <- r + step x (target - r)
//   task_succeeded      target 1, step 0.002  (many successes slowly rebuild trust)
//   task_failed         target 0, step 0.05   (a lease lost with its node or worker)
//   node_died           target 0, step 0.10   (a node vanishing mid-work)
//   uptime_hour         target 1, step 0.01   (each hour connected and healthy)
//   verification_passed target 1, step 0.30
//   verification_failed score capped at 0.1 at once (a wrong or implausible answer)
//   check_passed        target 1, step 0.02   (a spot check's re-run on another provider matched)
//   check_failed        score halved, then capped at 0.1 (a spot check found a result that two other providers
//                       contradicted: runtime/spot_check.hpp settles who disagreed)
// The result is clamped to [0, 1]. Trust is lost fast and earned slowly: at 0.9, one lost lease (-0.045)
// takes about 190 successes to make up, and an hour of uptime is worth five successes.
#pragma once

namespace iogrid::sched {

enum class Outcome { task_succeeded, task_failed, node_died, uptime_hour, verification_passed, verification_failed,
                     check_passed, check_failed };

double update_reputation(double r, Outcome o);
const char* to_string(Outcome o);

}  // namespace iogrid::sched
