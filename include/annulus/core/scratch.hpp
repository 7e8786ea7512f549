// Per-thread scratch that survives between calls, so hot paths allocate
// nothing once warm: scratch_lease<T> hands out a T owned by the calling
// thread and takes it back when the lease ends. Nested leases on one thread
// (a search of one index from inside a callback of another's) get distinct
// objects; each nesting depth allocates its T once per thread.
#pragma once

#include <memory>
#include <vector>

namespace annulus {

template <class T>
class scratch_lease {
 public:
  scratch_lease() {
    auto& pool = free_list();
    if (pool.empty()) {
      item_ = std::make_unique<T>();
    } else {
      item_ = std::move(pool.back());
      pool.pop_back();
    }
  }
  ~scratch_lease() {
    try {
      free_list().push_back(std::move(item_));
    } catch (...) {  // out of memory growing the pool: just drop the scratch
    }
  }
  scratch_lease(const scratch_lease&) = delete;
  scratch_lease& operator=(const scratch_lease&) = delete;

  T& operator*() const { return *item_; }
  T* operator->() const { return item_.get(); }

 private:
  static std::vector<std::unique_ptr<T>>& free_list() {
    thread_local std::vector<std::unique_ptr<T>> pool;
    return pool;
  }
  std::unique_ptr<T> item_;
};

}  // namespace annulus
