// `udc codec`: encode, decode and inspect Ethos-U weight streams.
#pragma once

#include <CLI/CLI.hpp>

namespace udc::tool {

/// Adds the `codec` subcommand and its own subcommands to `app`.
void add_codec_command(CLI::App& app);

}  // namespace udc::tool
