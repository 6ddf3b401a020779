// The cluster status (a StatusReply from the head) as JSON: `iogrid status --json`, the dashboard's
// /api/status, and the source of its Prometheus /metrics.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "runtime/head/head_core.hpp"
#include "wire.capnp.h"

namespace iogrid::runtime::cluster {

// The head's status from its core (call on the head's thread): as a StatusReply, and as the JSON document.
void fill_status(const head::HeadCore& core, const std::string& head_name, proto::StatusReply::Builder s);
std::string head_status_document(const head::HeadCore& core, const std::string& head_name);

nlohmann::json status_json(proto::StatusReply::Reader r);
// Prometheus text exposition of a status_json() document.
std::string prometheus_metrics(const nlohmann::json& status);

}  // namespace iogrid::runtime::cluster
