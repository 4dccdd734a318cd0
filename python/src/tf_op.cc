// Tconv3dForward: tconv3d's forward pass as a registered TensorFlow op, so a
// tf.function runs it like any other kernel: no Python, no GIL, no copies
// (tf.numpy_function, the fallback, pays all three on every call). It runs
// float32 layers and, under Keras's mixed_bfloat16, bf16 ones (T = bfloat16:
// TensorFlow's bfloat16 tensors are read and written as their 16-bit bits).
//
// This file is built against the installed TensorFlow's headers into its own
// library, _tf_op.so, loaded by tconv3d.keras with tf.load_op_library. It
// links nothing of tconv3d: the kernel calls _core through the table of
// tf_bridge.hpp, which _core hands over with tconv3d_tf_bind once the library
// is loaded. The layer is named by `cache_id`, the handle of its
// specialization cache in _core (as tconv3d.jax's FFI op names it).
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "python/src/tf_bridge.hpp"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace {

std::atomic<const Tconv3dTfBridge*> g_bridge{nullptr};

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

// T is x's and y's type: float, or bfloat16 for a mixed_bfloat16 layer (whose
// weights stay the float32 variables; the layer rounds the kernel itself).
REGISTER_OP("Tconv3dForward")
    .Input("x: T")
    .Input("kernel: float")
    .Input("bias: float")  // empty for a layer without bias
    .Output("y: T")
    .Attr("T: {float, bfloat16} = DT_FLOAT")
    .Attr("cache_id: int")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      // The exact shape comes from tconv3d.keras (set_shape); every layer's output is 5-D.
      c->set_output(0, c->UnknownShapeOfRank(5));
      return absl::OkStatus();
    })
    .Doc("tconv3d's Conv3DTranspose forward pass for the layer registered in tconv3d._core as cache_id.");

struct Allocation {
  OpKernelContext* ctx;
  absl::Status status;
};

// A tensor's buffer as raw bytes: a bfloat16 tensor is read as its 16-bit
// bits, which is what the bf16 layer takes (no conversion, no copy).
const void* bytes(const Tensor& t) { return t.NumElements() > 0 ? t.tensor_data().data() : nullptr; }

void* allocate(void* context, const int64_t* shape, int rank) {
  auto* a = static_cast<Allocation*>(context);
  TensorShape out;
  for (int i = 0; i < rank; ++i) {
    a->status = out.AddDimWithStatus(shape[i]);
    if (!a->status.ok()) return nullptr;
  }
  Tensor* y = nullptr;
  a->status = a->ctx->allocate_output(0, out, &y);
  if (!a->status.ok()) return nullptr;
  // An empty output has no buffer to hand back, but a non-null pointer says "allocated".
  static float empty_output;
  return y->NumElements() == 0 ? static_cast<void*>(&empty_output) : const_cast<char*>(y->tensor_data().data());
}

struct Dims {
  explicit Dims(const Tensor& t) {
    for (int i = 0; i < t.dims(); ++i) values.push_back(t.dim_size(i));
  }
  Tconv3dTfTensor view(const Tensor& t) const {
    return {bytes(t), values.data(), static_cast<int>(values.size())};
  }
  std::vector<int64_t> values;
};

class Tconv3dForwardOp : public OpKernel {
 public:
  explicit Tconv3dForwardOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("cache_id", &cache_id_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tconv3dTfBridge* bridge = g_bridge.load(std::memory_order_acquire);
    OP_REQUIRES(ctx, bridge != nullptr,
                absl::FailedPreconditionError("tconv3d: the op library is loaded but not bound to tconv3d._core "
                                              "(load it through tconv3d.keras)"));
    const Tensor &x = ctx->input(0), &kernel = ctx->input(1), &bias = ctx->input(2);
    const Dims xd(x), kd(kernel), bd(bias);
    Allocation allocation{ctx, absl::OkStatus()};
    char error[1024] = "";
    const int dtype = x.dtype() == tensorflow::DT_BFLOAT16 ? TCONV3D_TF_BFLOAT16 : TCONV3D_TF_FLOAT32;
    const int rc = bridge->forward(cache_id_, dtype, xd.view(x), kd.view(kernel), bd.view(bias), &allocate, &allocation,
                                   error, sizeof error);
    if (rc == TCONV3D_TF_OK) return;
    OP_REQUIRES_OK(ctx, allocation.status);
    OP_REQUIRES(ctx, false,
                rc == TCONV3D_TF_INVALID_ARGUMENT ? absl::InvalidArgumentError(error) : absl::InternalError(error));
  }

 private:
  int64_t cache_id_ = 0;
};

REGISTER_KERNEL_BUILDER(Name("Tconv3dForward").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
                        Tconv3dForwardOp);
REGISTER_KERNEL_BUILDER(
    Name("Tconv3dForward").Device(tensorflow::DEVICE_CPU).TypeConstraint<tensorflow::bfloat16>("T"),
    Tconv3dForwardOp);

}  // namespace

extern "C" __attribute__((visibility("default"))) int tconv3d_tf_bind(const Tconv3dTfBridge* bridge) {
  if (bridge == nullptr || bridge->version != TCONV3D_TF_BRIDGE_VERSION) return -1;
  g_bridge.store(bridge, std::memory_order_release);
  return 0;
}
