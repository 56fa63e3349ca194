#include "udc/npu_sim/area.hpp"

namespace udc::npu_sim {

const std::vector<common::Param<AreaModel>>& area_params() {
  using common::number_param;
  using common::text_param;
  using A = AreaModel;
  static const std::vector<common::Param<A>> params = [] {
    std::vector<common::Param<A>> p;
    p.push_back(text_param<A>(
        "technology", [](auto& a) -> auto& { return a.technology; }, {},
        "process the figures describe (a label)"));
    p.push_back(number_param<A>(
        "mac_um2", [](auto& a) -> auto& { return a.mac_um2; }, 0, 1e6, "um^2",
        "one int8 MAC (8x8-bit multiplier + 32-bit adder): Horowitz ISSCC 2014, 45 nm "
        "282 + 137 um^2, scaled by (16/45)^2 (public figures)"));
    p.push_back(number_param<A>(
        "sram_um2_per_kib", [](auto& a) -> auto& { return a.sram_um2_per_kib; }, 0, 1e7, "um^2/KiB",
        "system SRAM: TSMC 16 nm high-density bit cell 0.07 um^2 (public) over an array "
        "efficiency of 0.7 (assumed)"));
    p.push_back(number_param<A>(
        "shared_buffer_um2_per_kib", [](auto& a) -> auto& { return a.shared_buffer_um2_per_kib; },
        0, 1e7, "um^2/KiB",
        "shared buffer, per core: assumed twice the SRAM's (small banked macros, wide ports; "
        "no public figure)"));
    p.push_back(number_param<A>(
        "decoder_um2", [](auto& a) -> auto& { return a.decoder_um2; }, 0, 1e8, "um^2",
        "one weight decompression engine: assumed ~25k NAND2-equivalent gates of 0.2 um^2 (no "
        "public figure)"));
    p.push_back(number_param<A>(
        "fixed_um2", [](auto& a) -> auto& { return a.fixed_um2; }, 0, 1e9, "um^2",
        "per core: command processor, DMA, output unit and control (assumed; no public "
        "figure)"));
    return p;
  }();
  return params;
}

AreaModel read_area_model(common::YamlSection& section) {
  AreaModel model;
  common::read_params(section, area_params(), model);
  section.finish();
  return model;
}

AreaBreakdown area_of(const NpuConfig& config, const AreaModel& model) {
  constexpr double kUm2PerMm2 = 1e6;
  constexpr double kBytesPerKib = 1024;
  const double cores = config.cores;
  AreaBreakdown area;
  area.macs = cores * config.macs_per_cycle * model.mac_um2 / kUm2PerMm2;
  area.shared_buffer = cores * double(config.shared_buffer_bytes) / kBytesPerKib *
                       model.shared_buffer_um2_per_kib / kUm2PerMm2;
  area.decoders = cores * config.weight_decoders * model.decoder_um2 / kUm2PerMm2;
  area.fixed = cores * model.fixed_um2 / kUm2PerMm2;
  area.sram = double(config.sram.size_bytes) / kBytesPerKib * model.sram_um2_per_kib / kUm2PerMm2;
  return area;
}

std::string area_params_listing(const AreaModel& model) {
  return common::params_listing(area_params(), model, "area");
}

}  // namespace udc::npu_sim
