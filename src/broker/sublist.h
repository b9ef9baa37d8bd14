// Sublist: the broker's subscription index. Given a published subject, it answers which
// subscriptions receive the message.
//
// A subscription is (pattern, queue group, handle). The handle is an opaque 64-bit value the
// broker chooses (a slot id in its subscription table, or a pointer cast to an integer); the
// index never interprets it. One handle stands for one subscription, so a handle inserted
// under two patterns that both match a subject appears twice in the result, as NATS delivers
// once per matching subscription. An empty queue group means a plain subscription.
//
// Structure. A trie with one level per token: each level maps literal tokens to nodes and has
// at most one `*` node and one `>` node; a node holds the subscriptions whose pattern ends
// there and the next level. A match walks the subject's tokens through the literal child and,
// recursively, the `*` child, and collects the `>` child at every level with tokens left. The
// walk visits only the nodes of patterns that could still match, whatever the total count.
//
// Match cache. Results are cached by subject, so a repeated publish to the same subject costs
// one hash lookup and no allocation. The cache is bounded by entries and by the total handles
// held in cached results (a result with more handles than that budget is computed and returned
// but not cached: delivering to that many subscribers costs far more than computing the list).
// When full, a random entry is evicted (O(1), no LRU bookkeeping on the hit path). Subjects
// with no subscribers are cached too: publishing to a subject nobody listens to is common.
// Invalidation is precise: an insert or remove of pattern P drops exactly the cached subjects
// that P matches: one hash lookup when P is literal, a scan of the cache with subject_matches
// when P has wildcards. Entries that P does not match are untouched.
//
// Thread safety: none. A Sublist is owned by one event loop (one broker shard) and used only on
// its thread; match() mutates the cache and the stats.
#pragma once

#include <boost/unordered/unordered_flat_map.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "broker/subject.h"
#include "slipstream/status.h"

namespace slip::broker {

using SubscriptionHandle = std::uint64_t;

namespace detail {
struct Level;
struct Node;

// std::hash<std::string_view>, usable for std::string keys looked up by string_view.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
}  // namespace detail

// The members of one queue group among the matches: the broker delivers to one of them.
// Members of the same group name from different matching patterns are merged into one group,
// as NATS does.
struct QueueGroupMatch {
  std::string_view name;
  std::span<const SubscriptionHandle> members;  // non-empty
};

// What match() returns. Orders are unspecified. The views point into the Sublist; see match()
// for how long they stay valid.
class SublistResult {
 public:
  SublistResult() = default;
  SublistResult(SublistResult&&) noexcept = default;
  SublistResult& operator=(SublistResult&&) noexcept = default;
  // Not copyable: the group spans point into this object's own storage.
  SublistResult(const SublistResult&) = delete;
  SublistResult& operator=(const SublistResult&) = delete;

  std::span<const SubscriptionHandle> plain() const { return plain_; }
  std::span<const QueueGroupMatch> queue_groups() const { return groups_; }
  bool empty() const { return plain_.empty() && groups_.empty(); }
  // Plain subscribers plus every queue group member.
  std::size_t handle_count() const { return plain_.size() + queue_members_.size(); }

 private:
  friend class Sublist;
  void clear() {
    plain_.clear();
    queue_members_.clear();
    groups_.clear();
  }

  std::vector<SubscriptionHandle> plain_;
  std::vector<SubscriptionHandle> queue_members_;  // the members of all groups, group by group
  std::vector<QueueGroupMatch> groups_;            // spans into queue_members_
};

struct SublistOptions {
  // Limits the inserted patterns and queue group names must respect.
  SubjectLimits limits;
  // Most subjects cached; 0 disables the cache.
  std::size_t cache_max_entries = 4096;
  // Most handles held by all cached results together (8 bytes each).
  std::size_t cache_max_handles = std::size_t{1} << 20;
};

struct SublistStats {
  std::size_t subscriptions = 0;      // inserted and not removed
  std::size_t cache_entries = 0;      // subjects cached now
  std::size_t cache_handles = 0;      // handles held by cached results now
  std::uint64_t matches = 0;          // match() calls
  std::uint64_t cache_hits = 0;       // answered from the cache
  std::uint64_t cache_misses = 0;     // computed from the trie (every match when the cache is off)
  std::uint64_t cache_evictions = 0;  // entries dropped to make room
  std::uint64_t cache_invalidations = 0;  // entries dropped because an insert or remove changed them
};

class Sublist {
 public:
  explicit Sublist(SublistOptions options = {});
  ~Sublist();
  Sublist(const Sublist&) = delete;
  Sublist& operator=(const Sublist&) = delete;

  // Adds a subscription. kInvalidArgument when the pattern or the queue group name is invalid
  // (validate_subscription_subject, validate_queue_group, under options().limits);
  // kAlreadyExists, changing nothing, when this exact (pattern, queue_group, handle) is
  // already present. `queue_group` empty: a plain subscription.
  Status insert(std::string_view pattern, std::string_view queue_group, SubscriptionHandle handle);

  // Removes a subscription inserted with the same three values; false when there is none
  // (including for invalid patterns). Frees trie nodes left empty.
  bool remove(std::string_view pattern, std::string_view queue_group, SubscriptionHandle handle);

  // The subscriptions whose pattern matches `subject` (as subject_matches defines it, for any
  // string; the broker passes subjects that validate_publish_subject accepted). The reference
  // stays valid until the next call of insert, remove or match on this Sublist. Allocation-free
  // on a cache hit; a miss reuses scratch storage and allocates only to grow it or to cache.
  const SublistResult& match(std::string_view subject);

  std::size_t size() const { return subscriptions_; }
  SublistStats stats() const;
  const SublistOptions& options() const { return options_; }

 private:
  struct CacheSlot {
    std::string key;  // the cached subject, when used
    bool used = false;
    SublistResult result;
  };

  void split(std::string_view subject);
  void collect(const detail::Level* level, std::size_t i);
  void compute(SublistResult& out);
  const SublistResult& store(std::string_view subject);
  void evict_slot(std::uint32_t slot);
  void evict_random();
  void invalidate(std::string_view pattern, bool literal);

  SublistOptions options_;
  std::unique_ptr<detail::Level> root_;
  std::size_t subscriptions_ = 0;

  // Scratch, reused by every call so that steady-state calls do not allocate: the tokens being
  // walked, the path remove() walked, the nodes a match collected, the group of each
  // (node, queue group) pair and each group's size or position, and the result of a match
  // that is not cached.
  std::vector<std::string_view> tokens_;
  std::vector<detail::Level*> path_levels_;
  std::vector<detail::Node*> path_nodes_;
  std::vector<const detail::Node*> matched_;
  std::vector<std::uint32_t> group_of_;
  std::vector<std::size_t> group_at_;
  SublistResult scratch_;

  // Cache: slots live in a deque so a slot's key never moves and the index can view it.
  std::deque<CacheSlot> slots_;
  std::vector<std::uint32_t> free_slots_;
  boost::unordered_flat_map<std::string_view, std::uint32_t, detail::StringHash> cache_;
  std::size_t cache_handles_ = 0;
  std::uint64_t rng_ = 0x9E3779B97F4A7C15ull;

  std::uint64_t matches_ = 0;
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
  std::uint64_t evictions_ = 0;
  std::uint64_t invalidations_ = 0;
};

}  // namespace slip::broker
