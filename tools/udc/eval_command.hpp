// `udc eval`: top-1 accuracy of an integer model on a labelled data set, run on the
// reference interpreter or on the simulated NPU.
#pragma once

#include <CLI/CLI.hpp>

namespace udc::tool {

void add_eval_command(CLI::App& app);

}  // namespace udc::tool
