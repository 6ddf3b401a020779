// The cluster status (a StatusReply from the head) as JSON: `iogrid status --json`, the dashboard's
// /api/status, and the source of its Prometheus /metrics.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "runtime/head/head_core.hpp"
#include "wire.capnp.h"
#include <kj/array.h>

namespace iogrid::runtime::cluster {

// The head's status from its core (call on the head's thread): as a StatusReply, and as the JSON document.
void fill_status(const head::HeadCore& core, const std::string& head_name, proto::StatusReply::Builder s);
std::string head_status_document(const head::HeadCore& core, const std::string& head_name);
// The same in two steps, so a large head spends on its own thread only the cheap one: the StatusReply as a flat
// Cap'n Proto message (call on the head's thread), then its JSON text (any thread). 10,000 nodes: see
// `iogrid bench ui`.
kj::Array<capnp::word> head_status_message(const head::HeadCore& core, const std::string& head_name);
std::string status_document(kj::ArrayPtr<const capnp::word> message);
nlohmann::json status_document_json(kj::ArrayPtr<const capnp::word> message);

nlohmann::json status_json(proto::StatusReply::Reader r);
// Prometheus text exposition of a status_json() document.
std::string prometheus_metrics(const nlohmann::json& status);

}  // namespace iogrid::runtime::cluster
