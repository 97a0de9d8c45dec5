// A run-time choice of eviction policy for the warm tier inside cache<K> and typed_cache<K, V>,
// whose type cannot depend on a builder option.
//
// any_policy owns one eviction_policy behind a virtual interface (one indirect call per policy
// event: a few ns against the 25-370 ns a policy event costs, docs/eviction.md). It satisfies
// eviction_policy itself, so the warm tier drives it as any other policy.
//
// A warm tier builds one policy per shard through a policy_factory(shard capacity, shard count).
// Policies that run miniature simulations (the adaptive family: constructible from capacity and
// adaptive_options) get the shared simulation budget split among the shards, so a tier's
// simulation cost does not grow with its shard count (bench/warm.cpp measured 3.2x the
// throughput of a full budget per shard, for 1.1 points of hit ratio on a Zipf workload).
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "goldylox/concepts.hpp"
#include "goldylox/policies.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class any_policy {
 public:
  using slot = std::uint32_t;
  static constexpr std::string_view name = "any";

  // The default policy (policy::adaptive).
  explicit any_policy(std::size_t capacity) : any_policy(policy::adaptive(capacity)) {}

  template <eviction_policy P>
    requires(!std::same_as<P, any_policy>)
  explicit any_policy(P p) : impl_(std::make_unique<model<P>>(std::move(p))) {}

  void on_hit(slot s) { impl_->on_hit(s); }
  void on_miss(std::uint64_t hash) { impl_->on_miss(hash); }
  slot victim() { return impl_->victim(); }
  void on_insert(slot s, std::uint64_t hash) { impl_->on_insert(s, hash); }
  void on_erase(slot s) { impl_->on_erase(s); }
  std::size_t size() const { return impl_->size(); }
  std::size_t capacity() const { return impl_->capacity(); }
  // The wrapped policy's name (P::name).
  std::string_view policy_name() const noexcept { return impl_->policy_name(); }
  bool coalesces_hits() const noexcept { return impl_->coalesces_hits(); }
  // deferred_learning_policy, for every policy: one that does not learn has nothing to defer.
  void defer_learning(std::size_t n) { impl_->defer_learning(n); }
  bool learn() { return impl_->learn(); }
  std::size_t learning_backlog() const noexcept { return impl_->learning_backlog(); }

 private:
  struct base {
    virtual ~base() = default;
    virtual void on_hit(slot s) = 0;
    virtual void on_miss(std::uint64_t hash) = 0;
    virtual slot victim() = 0;
    virtual void on_insert(slot s, std::uint64_t hash) = 0;
    virtual void on_erase(slot s) = 0;
    virtual std::size_t size() const = 0;
    virtual std::size_t capacity() const = 0;
    virtual std::string_view policy_name() const noexcept = 0;
    virtual bool coalesces_hits() const noexcept = 0;
    virtual void defer_learning(std::size_t n) = 0;
    virtual bool learn() = 0;
    virtual std::size_t learning_backlog() const noexcept = 0;
  };
  template <class P>
  struct model final : base {
    explicit model(P made) : p(std::move(made)) {}
    void on_hit(slot s) override { p.on_hit(s); }
    void on_miss(std::uint64_t hash) override { p.on_miss(hash); }
    slot victim() override { return p.victim(); }
    void on_insert(slot s, std::uint64_t hash) override { p.on_insert(s, hash); }
    void on_erase(slot s) override { p.on_erase(s); }
    std::size_t size() const override { return p.size(); }
    std::size_t capacity() const override { return p.capacity(); }
    std::string_view policy_name() const noexcept override { return P::name; }
    bool coalesces_hits() const noexcept override { return detail::coalesces_hits(p); }
    void defer_learning(std::size_t n) override {
      if constexpr (deferred_learning_policy<P>) p.defer_learning(n);
    }
    bool learn() override {
      if constexpr (deferred_learning_policy<P>) {
        return p.learn();
      } else {
        return false;
      }
    }
    std::size_t learning_backlog() const noexcept override {
      if constexpr (deferred_learning_policy<P>) {
        return p.learning_backlog();
      } else {
        return 0;
      }
    }
    P p;
  };
  std::unique_ptr<base> impl_;
};
static_assert(eviction_policy<any_policy> && deferred_learning_policy<any_policy>);

// Makes the policy of one warm-tier shard: (shard capacity, shard count) -> policy.
using policy_factory = std::function<any_policy(std::size_t capacity, std::size_t shards)>;

template <eviction_policy P>
any_policy make_shard_policy(std::size_t capacity, std::size_t shards) {
  if constexpr (std::constructible_from<P, std::size_t, adaptive_options>) {
    adaptive_options o;
    o.shadow_budget = std::max<std::size_t>(1, o.shadow_budget / std::max<std::size_t>(1, shards));
    return any_policy(P(capacity, o));
  } else {
    return any_policy(P(capacity));
  }
}

// The factory for a policy named as goldylox-sim names it (policy::for_each_named), or nullopt.
inline std::optional<policy_factory> named_policy_factory(std::string_view wanted) {
  std::optional<policy_factory> found;
  policy::for_each_named([&]<class P>(std::type_identity<P>, std::string_view name) {
    if (name == wanted) found.emplace(&make_shard_policy<P>);
  });
  return found;
}

// "lru, fifo, ..." for error messages.
inline std::string named_policy_list() {
  std::string out;
  policy::for_each_named([&]<class P>(std::type_identity<P>, std::string_view name) {
    if (!out.empty()) out += ", ";
    out += name;
  });
  return out;
}

}  // namespace detail
GOLDYLOX_END_NAMESPACE
