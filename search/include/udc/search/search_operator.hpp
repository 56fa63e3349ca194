// Search-space operators: what a block of the supernet may compute.
//
// Each operator is one implementation of SearchOperator, in its own file under
// search/src/operators/, registered by its YAML spelling in operator_registry(). The
// operator describes its weighted layers once (OperatorLayer); from that description the
// supernet builds its shared weights and runs them, the hardware tables build the
// candidate models they measure, and the derivation counts, names and prunes the layers.
// The operator itself only says what is particular to it: its spelling, its expansion,
// whether it adds its input back, and the layers of the derived model. Torch-free, so that
// configs are read and checked without LibTorch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "udc/search/train_config.hpp"

namespace udc::search {

/// One weighted layer of a search operator, in execution order: what it computes, where
/// its channels come from and go to, and whether it takes a sparsity choice.
struct OperatorLayer {
  /// Conv: kxk (or 1x1) convolution with batch norm. Depthwise: one kxk filter per
  /// channel, batch norm. FullyConnected: after global average pooling, with a bias.
  enum class Shape { Conv, Depthwise, FullyConnected } shape = Shape::Conv;
  const char* role = "";     ///< "conv", "dw", "pw", "expand", "project", "fc"
  bool windowed = false;     ///< the block's kernel and stride (else 1x1, stride 1)
  bool from_hidden = false;  ///< input channels: block input x expansion (else block input)
  /// Output channels: block input x expansion, masked to the active hidden width (else the
  /// block's output width).
  bool to_hidden = false;
  bool relu = true;      ///< followed by ReLU
  bool prunable = true;  ///< takes a sparsity choice; depthwise layers stay dense
};

/// A block's chosen operator as the derived model needs it: the choices resolved to values.
struct ChosenOperator {
  std::string block;             ///< the block's name; derived layers are named after it
  uint32_t out_channels = 0;     ///< the chosen output width [channels]
  uint32_t kernel = 3;           ///< the block's kernel [pixels]
  uint32_t stride = 1;           ///< the block's stride [pixels]
  std::vector<uint32_t> bits;    ///< per weighted layer, in order [bits]
  std::vector<double> sparsity;  ///< per weighted layer, in order (0 for a dense layer)
};

/// One operator of the search space. Immutable; shared by every block that offers it.
class SearchOperator {
 public:
  virtual ~SearchOperator() = default;
  /// The YAML spelling ("conv", "ir6"); also names the supernet's parameters.
  virtual std::string name() const = 0;
  /// The weighted layers in execution order; each one reads what the one before wrote.
  /// Empty: the operator passes its input on unchanged (the depth choice).
  const std::vector<OperatorLayer>& layers() const { return layers_; }
  /// Hidden channels per input channel of layers that read or write the hidden width.
  virtual uint32_t expansion() const { return 1; }
  /// Adds the block's input to its output when their shapes agree (stride 1, output width
  /// equal to input width).
  virtual bool adds_input() const { return false; }
  /// Ends in depth_to_space by this block size (output pixels per input pixel along each
  /// axis); 0: no depth_to_space.
  virtual uint32_t upscales() const { return 0; }
  /// The derived model's layers for this operator with the chosen values, appended to
  /// `layers`. `chosen.bits` and `chosen.sparsity` have one entry per weighted layer.
  virtual void derive(const ChosenOperator& chosen, std::vector<LayerSpec>& layers) const = 0;

  /// True for an operator without weighted layers (skip).
  bool passes_input() const { return layers_.empty(); }
  /// True when the operator ends in global pooling (output 1x1): a fully connected layer.
  bool pools_globally() const;
  /// Whether weighted layer `layer` takes a sparsity choice (false past the last layer).
  bool prunable(size_t layer) const { return layer < layers_.size() && layers_[layer].prunable; }

 protected:
  explicit SearchOperator(std::vector<OperatorLayer> layers) : layers_(std::move(layers)) {}
  /// The first derived layer of a block: its name, chosen width, kernel and stride, ReLU.
  static LayerSpec block_layer(const ChosenOperator& chosen);

 private:
  std::vector<OperatorLayer> layers_;
};

using OperatorPtr = std::shared_ptr<const SearchOperator>;

/// One registered operator family: how it is spelt and how it is made from its spelling.
struct OperatorRegistration {
  const char* spelling;  ///< as the config error lists it: "conv", "ir<expansion 1..16>"
  /// The operator spelt `text`, or nullptr when `text` is not this family's spelling.
  OperatorPtr (*parse)(const std::string& text);
};
/// Every operator a search space may name, in the order errors list them.
const std::vector<OperatorRegistration>& operator_registry();
/// The registered operator spelt `text`; nullptr when no family recognises it.
OperatorPtr parse_operator(const std::string& text);
/// "conv, separable, ir<expansion 1..16>, skip": the registered spellings.
std::string operator_spellings();
/// The fixed last block's operator (global average pooling, fully connected). Not in the
/// registry: the config reader appends it to every space.
OperatorPtr classifier_operator();
/// The fixed last block of a super-resolution space (a convolution to scale^2 x image
/// channels, then depth_to_space by `scale`, at least 2). Not in the registry either.
OperatorPtr upscaler_operator(uint32_t scale);

}  // namespace udc::search
