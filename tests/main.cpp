#define DOCTEST_CONFIG_IMPLEMENT
#include <adnn/core/tensor.hpp>
#include <doctest/doctest.h>

int main(int argc, char** argv) {
  adnn::detail::set_allocation_sentinel(true);  // unwritten outputs read as NaN / -1
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
