// ASan builds only: Boost.Context's ucontext backend (the one that tells AddressSanitizer
// about fiber stack switches, BOOST_USE_ASAN) keeps the running record of each OS thread in
// fiber_activation_record::current(). Debian's libboost_context is built for the fcontext
// backend and lacks that function, so it is provided here: a per-thread record for the
// thread's own (main) context, created on first use and freed when the thread exits.
#if defined(BOOST_USE_UCONTEXT)
#include <boost/context/fiber.hpp>

#include <memory>

namespace boost::context::detail {

namespace {
struct MainRecord {
  std::unique_ptr<fiber_activation_record> owned{new fiber_activation_record()};
  fiber_activation_record* current = owned.get();
};
}  // namespace

fiber_activation_record*& fiber_activation_record::current() noexcept {
  thread_local MainRecord rec;
  return rec.current;
}

}  // namespace boost::context::detail
#endif
