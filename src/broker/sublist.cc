#include "broker/sublist.h"

#include <algorithm>
#include <utility>

#include "core/assert.h"

namespace slip::broker {

namespace detail {

// The handles of one node (plain, or one queue group): a vector to iterate, plus a hash index
// from handle to position once it grows past kIndexAt, so that duplicate checks and removals
// stay O(1) for a subject with 100,000 subscribers and cost no allocation for one with three.
class HandleSet {
 public:
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  const std::vector<SubscriptionHandle>& items() const { return items_; }

  // False when `h` is already present.
  bool insert(SubscriptionHandle h) {
    if (find(h) != kNone) return false;
    items_.push_back(h);
    if (index_) {
      index_->emplace(h, static_cast<std::uint32_t>(items_.size() - 1));
    } else if (items_.size() > kIndexAt) {
      index_ = std::make_unique<Index>();
      index_->reserve(items_.size() * 2);
      for (std::size_t i = 0; i < items_.size(); ++i) index_->emplace(items_[i], static_cast<std::uint32_t>(i));
    }
    return true;
  }

  // False when `h` is absent. Moves the last handle into the hole.
  bool erase(SubscriptionHandle h) {
    const std::size_t pos = find(h);
    if (pos == kNone) return false;
    const SubscriptionHandle moved = items_.back();
    items_[pos] = moved;
    items_.pop_back();
    if (index_) {
      index_->erase(h);
      if (moved != h) (*index_)[moved] = static_cast<std::uint32_t>(pos);
      if (items_.size() <= kIndexAt / 2) index_.reset();  // hysteresis: no flapping at kIndexAt
    }
    return true;
  }

 private:
  static constexpr std::size_t kIndexAt = 16;
  static constexpr std::size_t kNone = ~std::size_t{0};
  using Index = boost::unordered_flat_map<SubscriptionHandle, std::uint32_t>;

  std::size_t find(SubscriptionHandle h) const {
    if (index_) {
      auto it = index_->find(h);
      return it == index_->end() ? kNone : it->second;
    }
    for (std::size_t i = 0; i < items_.size(); ++i) {
      if (items_[i] == h) return i;
    }
    return kNone;
  }

  std::vector<SubscriptionHandle> items_;
  std::unique_ptr<Index> index_;
};

struct QueueSubs {
  std::string name;
  HandleSet members;  // non-empty while the group is in its node
};

struct Node {
  std::unique_ptr<Level> next;  // the level for the following token; null at a leaf
  HandleSet plain;
  std::vector<QueueSubs> queues;  // few per node: scanned linearly by name

  bool has_subscriptions() const { return !plain.empty() || !queues.empty(); }
};

// A level's literal children: a short vector scanned linearly while small (most levels deep in
// a trie have one or two children, and a flat hash map would cost hundreds of bytes each),
// a hash map once there are more than kSmall.
class Children {
 public:
  bool empty() const { return small_.empty() && !big_; }

  const Node* find(std::string_view token) const {
    if (big_) {
      auto it = big_->find(token);
      return it == big_->end() ? nullptr : it->second.get();
    }
    for (const auto& [key, node] : small_) {
      if (key == token) return node.get();
    }
    return nullptr;
  }
  Node* find(std::string_view token) { return const_cast<Node*>(std::as_const(*this).find(token)); }

  // The child for `token`, created empty if absent. The reference is valid until the next
  // change to this level.
  Node& find_or_create(std::string_view token) {
    if (Node* n = find(token)) return *n;
    auto node = std::make_unique<Node>();
    Node& ref = *node;
    if (big_) {
      big_->emplace(std::string(token), std::move(node));
    } else if (small_.size() < kSmall) {
      small_.emplace_back(std::string(token), std::move(node));
    } else {
      big_ = std::make_unique<Map>();
      big_->reserve(kSmall * 2);
      for (auto& [key, child] : small_) big_->emplace(std::move(key), std::move(child));
      small_.clear();
      small_.shrink_to_fit();
      big_->emplace(std::string(token), std::move(node));
    }
    return ref;
  }

  void erase(std::string_view token) {
    if (big_) {
      auto it = big_->find(token);
      if (it != big_->end()) big_->erase(it);
      if (big_->empty()) big_.reset();  // a level that empties is freed by its parent anyway
      return;
    }
    for (std::size_t i = 0; i < small_.size(); ++i) {
      if (small_[i].first == token) {
        if (i + 1 != small_.size()) small_[i] = std::move(small_.back());
        small_.pop_back();
        return;
      }
    }
  }

 private:
  static constexpr std::size_t kSmall = 8;
  using Map = boost::unordered_flat_map<std::string, std::unique_ptr<Node>, StringHash, std::equal_to<>>;

  std::vector<std::pair<std::string, std::unique_ptr<Node>>> small_;
  std::unique_ptr<Map> big_;
};

struct Level {
  Children literals;
  std::unique_ptr<Node> star;  // the `*` child
  std::unique_ptr<Node> gt;    // the `>` child (a leaf: `>` is always the last token)

  bool empty() const { return literals.empty() && !star && !gt; }
};

}  // namespace detail

using detail::Level;
using detail::Node;

Sublist::Sublist(SublistOptions options) : options_(options), root_(std::make_unique<Level>()) {
  tokens_.reserve(options_.limits.max_tokens);
  if (options_.cache_max_entries > 0) {
    // Reserved once, so the index rarely rehashes while in use.
    cache_.reserve(options_.cache_max_entries);
  }
}

Sublist::~Sublist() = default;

void Sublist::split(std::string_view s) {
  tokens_.clear();
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = s.find('.', start);
    if (dot == std::string_view::npos) {
      tokens_.push_back(s.substr(start));
      return;
    }
    tokens_.push_back(s.substr(start, dot - start));
    start = dot + 1;
  }
}

Status Sublist::insert(std::string_view pattern, std::string_view queue_group, SubscriptionHandle handle) {
  SLIP_TRY(validate_subscription_subject(pattern, options_.limits));
  if (!queue_group.empty()) SLIP_TRY(validate_queue_group(queue_group, options_.limits));
  split(pattern);

  // Nodes are created on the way down. A duplicate is found only at an existing node, and every
  // node above an existing node exists too, so a refused insert leaves nothing new behind.
  Level* level = root_.get();
  Node* node = nullptr;
  bool literal = true;
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    const std::string_view t = tokens_[i];
    std::unique_ptr<Node>* wildcard = t == "*" ? &level->star : t == ">" ? &level->gt : nullptr;
    if (wildcard) {
      literal = false;
      if (!*wildcard) *wildcard = std::make_unique<Node>();
      node = wildcard->get();
    } else {
      node = &level->literals.find_or_create(t);
    }
    if (i + 1 < tokens_.size()) {
      if (!node->next) node->next = std::make_unique<Level>();
      level = node->next.get();
    }
  }
  SLIP_ASSERT(node != nullptr);

  bool added;
  if (queue_group.empty()) {
    added = node->plain.insert(handle);
  } else {
    auto it = std::find_if(node->queues.begin(), node->queues.end(),
                           [&](const detail::QueueSubs& q) { return q.name == queue_group; });
    if (it == node->queues.end()) {
      node->queues.push_back(detail::QueueSubs{std::string(queue_group), {}});
      it = node->queues.end() - 1;
    }
    added = it->members.insert(handle);
  }
  if (!added) {
    std::string m = "subscription to '";
    m += pattern;
    m += '\'';
    if (!queue_group.empty()) {
      m += " in queue group '";
      m += queue_group;
      m += '\'';
    }
    m += " with handle " + std::to_string(handle) + " already exists";
    return Status(StatusCode::kAlreadyExists, m);
  }
  ++subscriptions_;
  invalidate(pattern, literal);
  return Status::ok();
}

bool Sublist::remove(std::string_view pattern, std::string_view queue_group, SubscriptionHandle handle) {
  if (pattern.size() > options_.limits.max_bytes) return false;  // never inserted
  split(pattern);
  if (tokens_.size() > options_.limits.max_tokens) return false;

  // The path from the root: path_nodes_[i] is the node for tokens_[i], a child of
  // path_levels_[i].
  path_levels_.clear();
  path_nodes_.clear();
  Level* level = root_.get();
  bool literal = true;
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    if (level == nullptr) return false;
    const std::string_view t = tokens_[i];
    Node* node;
    if (t == "*") {
      node = level->star.get();
      literal = false;
    } else if (t == ">") {
      node = level->gt.get();
      literal = false;
    } else {
      node = level->literals.find(t);
    }
    if (node == nullptr) return false;
    path_levels_.push_back(level);
    path_nodes_.push_back(node);
    level = node->next.get();
  }

  Node* node = path_nodes_.back();
  if (queue_group.empty()) {
    if (!node->plain.erase(handle)) return false;
  } else {
    auto it = std::find_if(node->queues.begin(), node->queues.end(),
                           [&](const detail::QueueSubs& q) { return q.name == queue_group; });
    if (it == node->queues.end() || !it->members.erase(handle)) return false;
    if (it->members.empty()) {
      if (it + 1 != node->queues.end()) *it = std::move(node->queues.back());
      node->queues.pop_back();
    }
  }
  --subscriptions_;
  // Before pruning: cached results may view queue group names held by the nodes below.
  invalidate(pattern, literal);

  // Free the nodes and levels this removal left empty, from the leaf up.
  for (std::size_t i = tokens_.size(); i-- > 0;) {
    Node* n = path_nodes_[i];
    if (n->next && n->next->empty()) n->next.reset();
    if (n->has_subscriptions() || n->next) break;
    Level* l = path_levels_[i];
    const std::string_view t = tokens_[i];
    if (t == "*") {
      l->star.reset();
    } else if (t == ">") {
      l->gt.reset();
    } else {
      l->literals.erase(t);
    }
  }
  return true;
}

// Collects into matched_ the nodes with subscriptions whose pattern matches tokens_, walking
// from `level` at token i. Recurses only into `*` children, so the depth is bounded by the
// deepest pattern (at most limits.max_tokens). Each node is reached by one path only, so none
// is collected twice.
void Sublist::collect(const Level* level, std::size_t i) {
  const Node* literal = nullptr;
  const Node* star = nullptr;
  for (; i < tokens_.size(); ++i) {
    if (level == nullptr) return;
    // At least one token (tokens_[i]) is left for `>`.
    if (level->gt && level->gt->has_subscriptions()) matched_.push_back(level->gt.get());
    star = level->star.get();
    if (star && star->next && i + 1 < tokens_.size()) collect(star->next.get(), i + 1);
    literal = level->literals.find(tokens_[i]);
    level = literal ? literal->next.get() : nullptr;
  }
  // Both were found at the level of the last token.
  if (literal && literal->has_subscriptions()) matched_.push_back(literal);
  if (star && star->has_subscriptions()) matched_.push_back(star);
}

void Sublist::compute(SublistResult& out) {
  matched_.clear();
  collect(root_.get(), 0);
  out.clear();
  group_of_.clear();
  group_at_.clear();

  // Pass 1: plain subscribers; the size of each group, merging groups of the same name from
  // different nodes; and which group each (node, queue group) pair belongs to.
  for (const Node* n : matched_) {
    const auto& plain = n->plain.items();
    out.plain_.insert(out.plain_.end(), plain.begin(), plain.end());
    for (const detail::QueueSubs& q : n->queues) {
      std::size_t g = 0;
      while (g < out.groups_.size() && out.groups_[g].name != q.name) ++g;
      if (g == out.groups_.size()) {
        out.groups_.push_back(QueueGroupMatch{q.name, {}});
        group_at_.push_back(0);
      }
      group_at_[g] += q.members.size();
      group_of_.push_back(static_cast<std::uint32_t>(g));
    }
  }
  if (out.groups_.empty()) return;

  // Pass 2: lay the groups out one after another in queue_members_ (group_at_ turns from sizes
  // into each group's next free position), then copy the members in.
  std::size_t total = 0;
  for (std::size_t& at : group_at_) {
    const std::size_t size = at;
    at = total;
    total += size;
  }
  out.queue_members_.resize(total);
  std::size_t k = 0;
  for (const Node* n : matched_) {
    for (const detail::QueueSubs& q : n->queues) {
      std::size_t& at = group_at_[group_of_[k++]];
      const auto& members = q.members.items();
      std::copy(members.begin(), members.end(), out.queue_members_.begin() + static_cast<std::ptrdiff_t>(at));
      at += members.size();
    }
  }
  // Each group_at_ now holds its group's end.
  std::size_t begin = 0;
  for (std::size_t g = 0; g < out.groups_.size(); ++g) {
    out.groups_[g].members = std::span<const SubscriptionHandle>(out.queue_members_.data() + begin, group_at_[g] - begin);
    begin = group_at_[g];
  }
}

const SublistResult& Sublist::match(std::string_view subject) {
  ++matches_;
  if (options_.cache_max_entries > 0) {
    auto it = cache_.find(subject);
    if (it != cache_.end()) {
      ++hits_;
      return slots_[it->second].result;
    }
  }
  ++misses_;
  split(subject);
  compute(scratch_);
  return store(subject);
}

// Moves scratch_ into a cache slot when it fits, evicting as needed; returns where it is.
const SublistResult& Sublist::store(std::string_view subject) {
  const std::size_t handles = scratch_.handle_count();
  if (options_.cache_max_entries == 0 || handles > options_.cache_max_handles) return scratch_;
  while (cache_.size() >= options_.cache_max_entries || cache_handles_ + handles > options_.cache_max_handles) {
    evict_random();
  }
  std::uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  CacheSlot& s = slots_[slot];
  s.key.assign(subject);
  s.used = true;
  // Swapping keeps each result's vectors (and the group spans into them) intact, and leaves
  // the slot's old buffers in scratch_ for the next miss.
  std::swap(s.result, scratch_);
  cache_.emplace(std::string_view(s.key), slot);
  cache_handles_ += handles;
  return s.result;
}

void Sublist::evict_slot(std::uint32_t slot) {
  CacheSlot& s = slots_[slot];
  cache_.erase(std::string_view(s.key));
  cache_handles_ -= s.result.handle_count();
  s.used = false;
  free_slots_.push_back(slot);
}

void Sublist::evict_random() {
  // xorshift64: cheap, and good enough to spread evictions.
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  SLIP_ASSERT(!cache_.empty());
  std::size_t i = rng_ % slots_.size();
  while (!slots_[i].used) i = (i + 1) % slots_.size();
  evict_slot(static_cast<std::uint32_t>(i));
  ++evictions_;
}

void Sublist::invalidate(std::string_view pattern, bool literal) {
  if (cache_.empty()) return;
  if (literal) {
    // A literal pattern matches one subject: itself.
    auto it = cache_.find(pattern);
    if (it != cache_.end()) {
      evict_slot(it->second);
      ++invalidations_;
    }
    return;
  }
  // TODO(perf): index cached subjects by first token if wildcard churn with a full cache shows
  // up in profiles (bench: BM_InsertRemoveWildcardWithFullCache).
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].used && subject_matches(pattern, slots_[i].key)) {
      evict_slot(static_cast<std::uint32_t>(i));
      ++invalidations_;
    }
  }
}

SublistStats Sublist::stats() const {
  SublistStats s;
  s.subscriptions = subscriptions_;
  s.cache_entries = cache_.size();
  s.cache_handles = cache_handles_;
  s.matches = matches_;
  s.cache_hits = hits_;
  s.cache_misses = misses_;
  s.cache_evictions = evictions_;
  s.cache_invalidations = invalidations_;
  return s;
}

}  // namespace slip::broker
