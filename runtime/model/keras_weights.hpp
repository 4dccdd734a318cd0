// Finds a Keras layer's kernel and bias in a weights file by the layer's
// path, in both layouts Keras writes:
//  - the saving library's (`.keras` zip, `.weights.h5`): layers/<saved name>/
//    (layers/<saved name>/...)/vars/0 = kernel, vars/1 = bias; Keras 3 also
//    records the layer name as the `name` attribute of each vars group;
//  - the legacy HDF5 layout (`.h5`): [model_weights/]<top layer>/ with a
//    `weight_names` attribute listing "<...>/<layer>/kernel[:0]".
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "runtime/model/hdf5_file.hpp"
#include "runtime/model/keras_config_walk.hpp"

namespace tconv3d::model {

struct KerasLayerWeights {
  std::shared_ptr<const Float32Dataset> kernel;
  std::shared_ptr<const Float32Dataset> bias;  // null without bias
};

// Throws Error(file, "layer 'PATH': ...") when a weight is missing or extra.
KerasLayerWeights find_keras_weights(const Hdf5File& file, const KerasLayerSite& site, bool use_bias);

}  // namespace tconv3d::model
