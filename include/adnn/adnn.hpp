#pragma once
// Umbrella header.
#include <adnn/config.hpp>
#include <adnn/core/tensor.hpp>
#include <adnn/autograd/autograd.hpp>
#include <adnn/ops/ops.hpp>
#include <adnn/nn/loss.hpp>
#include <adnn/nn/layers.hpp>
#include <adnn/nn/models.hpp>
#include <adnn/nn/module.hpp>
#include <adnn/nn/attention.hpp>
#include <adnn/optim/optimizer.hpp>
#include <adnn/optim/schedule.hpp>
#include <adnn/io/checkpoint.hpp>
#include <adnn/io/safetensors.hpp>
