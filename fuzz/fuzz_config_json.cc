// libFuzzer target: a Keras model config (JSON) as the loader reads it: the
// bounded parse, the walk to every Conv3DTranspose (nested models, input
// shapes, saved names), and each layer's config. The loader turns a JSON type
// error inside a layer config into an Error, so that is allowed here too;
// any other exception escaping is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/config_json.hpp"
#include "runtime/model/keras_config_walk.hpp"
#include "tconv3d/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const nlohmann::json config = tconv3d::parse_untrusted_json(text, "fuzz.json");
    for (const auto& site : tconv3d::model::find_transposed_convolutions(config)) {
      (void)site.path();
      std::vector<std::string> warnings;
      try {
        tconv3d::config_from_json(site.entry, std::nullopt, &warnings);
      } catch (const nlohmann::json::exception&) {
      }
    }
  } catch (const tconv3d::Error&) {
  }
  return 0;
}
