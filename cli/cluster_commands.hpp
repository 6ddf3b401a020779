// `iogrid head`, `iogrid node`, `iogrid status`, `iogrid job ...`, `iogrid ui-key ...`.
#pragma once

#include <string>
#include <vector>

namespace iogrid::cli {

int head_command(const std::vector<std::string>& args);
int node_command(const std::vector<std::string>& args);
int status_command(const std::vector<std::string>& args);
int tunnel_command(const std::vector<std::string>& args);
int job_command(const std::vector<std::string>& args);
// `iogrid ui-key add NAME | list | remove NAME [--keys-file F]`: the dashboard's user keys.
int ui_key_command(const std::vector<std::string>& args);
// The user keys' file beside a token file: DIR/ui-keys.
std::string default_ui_keys_path(const std::string& token_file);

}  // namespace iogrid::cli
