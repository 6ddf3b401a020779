// The cluster status (a StatusReply from the head) as JSON: `iogrid status --json`, the dashboard's
// /api/status, and the source of its Prometheus /metrics.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "wire.capnp.h"

namespace iogrid::runtime::cluster {

nlohmann::json status_json(proto::StatusReply::Reader r);
// Prometheus text exposition of a status_json() document.
std::string prometheus_metrics(const nlohmann::json& status);

}  // namespace iogrid::runtime::cluster
