// Silicon area of an NPU configuration and its SRAM: a first-order model, each resource's
// count times an area per unit, so that a hardware search can hold area as a budget and
// report it as a cost. An immutable specs struct (AreaModel) apart from the NpuConfig it
// prices; its parameters are declared once with default, unit and help.
//
// Sources of the defaults (16 nm class, the process of the Ethos-U55's public material):
//  - MAC: one int8 multiply-accumulate is an 8x8-bit multiplier and a 32-bit adder. The
//    public figures are Horowitz's 45 nm table (ISSCC 2014, "Computing's energy problem"):
//    282 um^2 and 137 um^2; scaled by (16/45)^2 to 53 um^2. The accumulator registers and
//    the array's wiring are not in it (no public figure).
//  - SRAM: the TSMC 16 nm FinFET high-density 6T bit cell, 0.07 um^2 (public), over an
//    array efficiency of 0.7 (periphery, sense amplifiers, redundancy; an assumption, no
//    public figure per macro): 8192 x 0.07 / 0.7 = 819 um^2 per KiB.
//  - Shared buffer, weight decoder, fixed part (command processor, DMA, output unit,
//    control): Arm publishes no area per block or per configuration. The defaults are
//    assumptions, stated as such in their help: a banked multi-port buffer at twice the
//    SRAM's area per KiB; a decoder of ~25k NAND2-equivalent gates at 0.2 um^2 each; a fixed
//    part of 50,000 um^2 per core. Change them (search config `area:`, sweep file `area:`)
//    to a foundry's or a synthesis run's figures.
// The clock does not enter: a higher clock costs area through timing closure, which a
// first-order model cannot say.
#pragma once

#include <string>
#include <vector>

#include "udc/common/params.hpp"
#include "udc/common/yaml_section.hpp"
#include "udc/npu_sim/config.hpp"

namespace udc::npu_sim {

struct AreaModel {
  std::string technology = "16nm";  ///< label of the process the figures describe
  double mac_um2 = 53;              ///< one int8 MAC of the array [um^2]
  double sram_um2_per_kib = 819;    ///< system SRAM (system.sram.size_bytes) [um^2 / KiB]
  /// shared buffer (npu.shared_buffer_bytes), per core [um^2 / KiB]
  double shared_buffer_um2_per_kib = 1638;
  double decoder_um2 = 5000;  ///< one weight decompression engine [um^2]
  double fixed_um2 = 50000;   ///< per core: command processor, DMA, output unit, control [um^2]
};

/// The area of one configuration by part [mm^2].
struct AreaBreakdown {
  double macs = 0, shared_buffer = 0, decoders = 0, fixed = 0, sram = 0;
  /// The NPU alone, without the system SRAM [mm^2].
  double npu() const { return macs + shared_buffer + decoders + fixed; }
  /// NPU and system SRAM [mm^2]: what an area budget limits.
  double total() const { return npu() + sram; }
};

/// Every parameter of the area model, declared once (key, range, unit, help; defaults are
/// a default AreaModel's values): what `area:` sections read and --list-params prints.
const std::vector<common::Param<AreaModel>>& area_params();

/// Reads an `area:` section onto the defaults; unknown keys and bad values are errors that
/// name the file, line and key.
AreaModel read_area_model(common::YamlSection& section);

/// The area of `config` under `model`: MACs, shared buffer, decoders and fixed part per core
/// times the cores, plus the system SRAM.
AreaBreakdown area_of(const NpuConfig& config, const AreaModel& model);

/// One line per parameter, as npu_params_listing() prints the NPU's.
std::string area_params_listing(const AreaModel& model);

}  // namespace udc::npu_sim
