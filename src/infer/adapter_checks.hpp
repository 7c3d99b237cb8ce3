// Checks shared by Session::set_adapters and Model::merged (internal).
#pragma once

#include <string>

#include "scholar/infer/model.hpp"

namespace scholar::infer {

/// The matrix of `m` an adapter's update of (role, layer) applies to; ValueError naming `who` if
/// the model has no such matrix.
const Weight& adapter_target(const Model& m, nn::TensorRole role, int64_t layer, const char* who);
/// ShapeError naming the tensor if the update's A and B do not fit the matrix.
void check_update(const Weight& w, const LoraUpdate& u, const std::string& name, const char* who);

}  // namespace scholar::infer
