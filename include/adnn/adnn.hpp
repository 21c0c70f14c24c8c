#pragma once
// Umbrella header.
#include <adnn/config.hpp>
#include <adnn/core/tensor.hpp>
#include <adnn/autograd/autograd.hpp>
#include <adnn/ops/ops.hpp>
#include <adnn/nn/module.hpp>
#include <adnn/optim/sgd.hpp>
