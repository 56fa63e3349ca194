// Exported .tflite files run by a second, independent implementation: Arm NN's TFLite
// parser and its reference CPU backend (Debian's libarmnn, 20.08). What it checks is the
// file's meaning: tensor layouts, per-channel scales, padding, strides, fused clamps, the
// graph's wiring. Arm NN's reference kernels requantise in float where TFLite rounds in
// fixed point, so an output may differ by one step; never by more.
//
// Each layer of the generated models is exported alone and run on both. Arm NN 20.08
// cannot parse DEPTH_TO_SPACE, so those layers are left out (and counted).
#include <gtest/gtest.h>
#include <armnn/ArmNN.hpp>
#include <armnnTfLiteParser/ITfLiteParser.hpp>

#include <random>

#include "udc/firmware_model/model_generator.hpp"
#include "udc/firmware_model/reference_interpreter.hpp"
#include "udc/firmware_model/tflite_export.hpp"

namespace udc::firmware_model {
namespace {

/// The first output of the file on Arm NN's reference backend for the given inputs (in the
/// graph's input order).
std::vector<int8_t> run_on_armnn(const std::vector<uint8_t>& file,
                                 const std::vector<std::vector<int8_t>>& values) {
  auto parser = armnnTfLiteParser::ITfLiteParser::Create();
  armnn::INetworkPtr network = parser->CreateNetworkFromBinary(file);
  const std::vector<std::string> input_names = parser->GetSubgraphInputTensorNames(0);
  const auto out =
      parser->GetNetworkOutputBindingInfo(0, parser->GetSubgraphOutputTensorNames(0)[0]);
  armnn::IRuntimePtr runtime = armnn::IRuntime::Create(armnn::IRuntime::CreationOptions());
  armnn::IOptimizedNetworkPtr optimized =
      armnn::Optimize(*network, {armnn::Compute::CpuRef}, runtime->GetDeviceSpec());
  if (!optimized) throw std::runtime_error("Arm NN: no reference backend");
  armnn::NetworkId id = 0;
  if (runtime->LoadNetwork(id, std::move(optimized)) != armnn::Status::Success) {
    throw std::runtime_error("Arm NN: network not loaded");
  }
  armnn::InputTensors inputs;
  for (size_t i = 0; i < input_names.size(); ++i) {
    const auto in = parser->GetNetworkInputBindingInfo(0, input_names[i]);
    if (values.at(i).size() != in.second.GetNumElements()) throw std::runtime_error("input size");
    inputs.emplace_back(in.first, armnn::ConstTensor(in.second, values[i].data()));
  }
  std::vector<int8_t> output(out.second.GetNumElements());
  const armnn::OutputTensors outputs{{out.first, armnn::Tensor(out.second, output.data())}};
  runtime->EnqueueWorkload(id, inputs, outputs);
  return output;
}

/// Operation `i` of `model` alone: its input tensors become the model's inputs. One
/// layer at a time, so that a one-step rounding difference is not carried through and
/// amplified by the layers after it.
Model single_operation(const Model& model, size_t i) {
  Model one;
  one.name = model.name + "_" + std::to_string(i);
  Operation op = model.operations[i];
  for (int32_t& t : op.inputs) {
    one.tensors.push_back(model.tensors[size_t(t)]);
    t = int32_t(one.tensors.size() - 1);
    one.inputs.push_back(t);
  }
  one.tensors.push_back(model.tensors[size_t(op.output)]);
  op.output = int32_t(one.tensors.size() - 1);
  one.outputs = {op.output};
  one.operations = {op};
  return one;
}

TEST(ArmnnCrossCheck, ExportedLayersComputeWhatTheInterpreterComputes) {
  size_t layers = 0, skipped = 0, values = 0, off_by_one = 0;
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    std::mt19937 rng(seed);
    const Model model = random_model(rng);
    for (size_t i = 0; i < model.operations.size(); ++i) {
      const OpType type = model.operations[i].type;
      if (type == OpType::DepthToSpace) {
        ++skipped;
        continue;
      }
      const Model one = single_operation(model, i);
      std::vector<std::vector<int8_t>> inputs;
      for (int32_t t : one.inputs) {
        std::vector<int8_t> input(one.tensors[size_t(t)].elements());
        for (int8_t& v : input) v = int8_t(std::uniform_int_distribution<int>(-128, 127)(rng));
        inputs.push_back(std::move(input));
      }
      const std::vector<int8_t> ours = run_reference(one, inputs)[size_t(one.outputs[0])];
      const std::vector<int8_t> theirs = run_on_armnn(export_tflite(one), inputs);
      ASSERT_EQ(theirs.size(), ours.size()) << "seed " << seed << " operation " << i;
      for (size_t k = 0; k < ours.size(); ++k) {
        const int difference = std::abs(int(ours[k]) - int(theirs[k]));
        ASSERT_LE(difference, 1) << "seed " << seed << " operation " << i << " ("
                                 << op_type_name(type) << ") output " << k;
        off_by_one += size_t(difference);
      }
      values += ours.size();
      ++layers;
    }
  }
  // MEAN, which the generator does not make.
  for (uint32_t trial = 0; trial < 10; ++trial) {
    std::mt19937 rng(100 + trial);
    ModelBuilder b("mean");
    const int32_t x = b.add_input("in", Shape{1 + trial % 5, 2 + trial % 4, 3 + trial}, 0.04f,
                                  int32_t(trial * 20) - 100);
    b.mark_output(b.mean("mean", x, ModelBuilder::Quant{0.01f + 0.01f * float(trial % 3), 7}));
    const Model one = b.finish();
    std::vector<int8_t> input(one.tensors[0].elements());
    for (int8_t& v : input) v = int8_t(std::uniform_int_distribution<int>(-128, 127)(rng));
    const std::vector<int8_t> ours = run_reference(one, {input})[size_t(one.outputs[0])];
    const std::vector<int8_t> theirs = run_on_armnn(export_tflite(one), {input});
    ASSERT_EQ(theirs.size(), ours.size()) << "mean " << trial;
    for (size_t k = 0; k < ours.size(); ++k) {
      const int difference = std::abs(int(ours[k]) - int(theirs[k]));
      ASSERT_LE(difference, 1) << "mean " << trial << " output " << k;
      off_by_one += size_t(difference);
    }
    values += ours.size();
    ++layers;
  }
  std::printf("Arm NN cross-check: %zu layers (%zu left out), %zu values, %zu off by one\n", layers,
              skipped, values, off_by_one);
  EXPECT_GE(layers, 100u);
  EXPECT_LT(off_by_one * 10, values);  // rounding differences, not a systematic offset
}

}  // namespace
}  // namespace udc::firmware_model
