// Entry point of the NPU model. The SystemC modules live behind this facade, so users
// of the simulator do not include SystemC headers.
#pragma once

#include <memory>

#include "udc/npu_sim/command_stream.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/npu_sim/report.hpp"

namespace udc::npu_sim {

struct RunOptions {
  /// Skip the arithmetic, the decoding and the data movement; timing is unchanged
  /// except that weight counts come from the command instead of the decoded stream.
  bool timing_only = false;
  /// Record a timeline (TraceEvent per unit activity).
  bool trace = false;
};

class NpuModel;

/// The one elaborated NPU of this process (SystemC elaborates once per process). Each
/// run() is a job: memories are cleared and loaded with the stream's images, the
/// commands run to completion, outputs are read back. Jobs may use different configs.
class Simulator {
 public:
  static Simulator& instance();

  /// Runs `stream` on an NPU described by `config`. Problems with the job (addresses
  /// outside a memory, corrupt weight streams) end it early with report.error set.
  JobReport run(const CommandStream& stream, const NpuConfig& config,
                const RunOptions& options = {});

 private:
  Simulator();
  ~Simulator();
  NpuModel* model_;
};

}  // namespace udc::npu_sim
