// Broker subject matching micro-benchmarks: Sublist::match with 100,000 subscriptions, from the
// cache and from the trie, insert and remove, and the baselines they are read against, measured
// in the same run: a brute-force scan of every pattern with subject_matches (what the trie
// replaces) and one lookup in a hash map of 1024 subjects (the floor for a cache hit).
//
// The subscriptions: 100,000 patterns over subjects of four tokens
// `t<0-99>.r<0-9>.d<0-999>.m<0-9>` (10 M subjects): 80 % literal, 15 % with one or two `*`
// tokens, 5 % ending in `>` after two or three literal tokens; one in ten in one of 8 queue
// groups. The wildcard patterns overlap heavily (there are only 100 first tokens), so a
// publish matches ~15 subscriptions on average.
//
// One iteration is one match (or one insert + remove, or one build of the whole index).
//
// Run: build/release/bench/sublist_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// and quote medians (docs/benchmarks.md, "Broker: subject matching").
#include <benchmark/benchmark.h>

#include <boost/unordered/unordered_flat_map.hpp>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "broker/subject.h"
#include "broker/sublist.h"

namespace slip::broker {
namespace {

constexpr int kSubscriptions = 100'000;
constexpr std::size_t kHotSubjects = 1024;       // fits the default cache (4096)
constexpr std::size_t kColdSubjects = 1 << 16;   // 16x the default cache: (nearly) every match misses

struct Subscription {
  std::string pattern;
  std::string queue;
};

// Built with append: g++ 12 -O3 warns falsely (-Wrestrict) on chains of std::string operator+.
std::string random_subject(std::mt19937& rng) {
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  std::string s;
  s.append("t").append(std::to_string(pick(100)));
  s.append(".r").append(std::to_string(pick(10)));
  s.append(".d").append(std::to_string(pick(1000)));
  s.append(".m").append(std::to_string(pick(10)));
  return s;
}

struct Workload {
  std::vector<Subscription> subs;
  std::vector<std::string> hot;   // subjects with subscribers (the literal patterns)
  std::vector<std::string> cold;  // half subscribed literals, half random subjects

  Workload() {
    std::mt19937 rng(42);
    auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
    std::vector<std::string> literals;
    subs.reserve(kSubscriptions);
    for (int i = 0; i < kSubscriptions; ++i) {
      std::string s = random_subject(rng);
      const int kind = pick(100);
      if (kind < 80) {
        literals.push_back(s);
      } else if (kind < 95) {
        // One or two tokens replaced by '*'.
        const int star1 = pick(4);
        const int star2 = pick(2) ? pick(4) : star1;
        std::string p;
        std::size_t start = 0;
        for (int t = 0; t < 4; ++t) {
          std::size_t end = s.find('.', start);
          if (end == std::string::npos) end = s.size();
          if (t) p.push_back('.');
          if (t == star1 || t == star2) {
            p.push_back('*');
          } else {
            p.append(s, start, end - start);
          }
          start = end + 1;
        }
        s = std::move(p);
      } else {
        // Two or three literal tokens, then '>'.
        std::size_t cut = s.find('.');
        cut = s.find('.', cut + 1);
        if (pick(2)) cut = s.find('.', cut + 1);
        s.resize(cut);
        s.append(".>");
      }
      std::string queue;
      if (pick(10) == 0) queue.append("workers").append(std::to_string(pick(8)));
      subs.push_back({std::move(s), std::move(queue)});
    }
    for (std::size_t i = 0; i < kHotSubjects; ++i) hot.push_back(literals[i * literals.size() / kHotSubjects]);
    for (std::size_t i = 0; i < kColdSubjects; ++i) {
      cold.push_back(i % 2 ? literals[static_cast<std::size_t>(pick(static_cast<int>(literals.size())))]
                           : random_subject(rng));
    }
  }
};

const Workload& workload() {
  static const Workload w;
  return w;
}

std::unique_ptr<Sublist> make_sublist(SublistOptions options = {}) {
  auto sl = std::make_unique<Sublist>(options);
  const Workload& w = workload();
  for (std::size_t i = 0; i < w.subs.size(); ++i) {
    // The generator can repeat a pattern; a repeated (pattern, queue) gets a new handle, so
    // every insert succeeds.
    if (!sl->insert(w.subs[i].pattern, w.subs[i].queue, i).is_ok()) std::abort();
  }
  return sl;
}

void report_matches(benchmark::State& state, const Sublist& sl, std::uint64_t handles) {
  const SublistStats s = sl.stats();
  state.counters["handles_per_match"] =
      benchmark::Counter(static_cast<double>(handles) / static_cast<double>(state.iterations()));
  state.counters["hit_rate"] = benchmark::Counter(
      s.matches ? static_cast<double>(s.cache_hits) / static_cast<double>(s.matches) : 0.0);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// Repeated publishes to 1024 subscribed subjects: every match is a cache hit.
void BM_MatchCacheHit(benchmark::State& state) {
  auto sl = make_sublist();
  const auto& subjects = workload().hot;
  for (const auto& s : subjects) sl->match(s);  // warm
  std::uint64_t handles = 0;
  std::size_t i = 0;
  for (auto _ : state) {
    const SublistResult& r = sl->match(subjects[i++ & (kHotSubjects - 1)]);
    benchmark::DoNotOptimize(&r);
    handles += r.handle_count();
  }
  report_matches(state, *sl, handles);
}
BENCHMARK(BM_MatchCacheHit);

// The trie walk alone: the cache is off, so every match computes its result.
void BM_MatchCacheMiss(benchmark::State& state) {
  SublistOptions options;
  options.cache_max_entries = 0;
  auto sl = make_sublist(options);
  const auto& subjects = workload().cold;
  std::uint64_t handles = 0;
  std::size_t i = 0;
  for (auto _ : state) {
    const SublistResult& r = sl->match(subjects[i++ & (kColdSubjects - 1)]);
    benchmark::DoNotOptimize(&r);
    handles += r.handle_count();
  }
  report_matches(state, *sl, handles);
}
BENCHMARK(BM_MatchCacheMiss);

// 65,536 distinct subjects through the default cache of 4096: a miss, then caching the result
// and evicting a random entry, almost every time.
void BM_MatchCacheMissEvicting(benchmark::State& state) {
  auto sl = make_sublist();
  const auto& subjects = workload().cold;
  std::uint64_t handles = 0;
  std::size_t i = 0;
  for (auto _ : state) {
    const SublistResult& r = sl->match(subjects[i++ & (kColdSubjects - 1)]);
    benchmark::DoNotOptimize(&r);
    handles += r.handle_count();
  }
  report_matches(state, *sl, handles);
}
BENCHMARK(BM_MatchCacheMissEvicting);

// Baseline: what the trie replaces, subject_matches against all 100,000 patterns.
void BM_BaselineBruteForceScan(benchmark::State& state) {
  const Workload& w = workload();
  std::size_t i = 0;
  std::uint64_t handles = 0;
  for (auto _ : state) {
    const std::string& subject = w.cold[i++ & (kColdSubjects - 1)];
    std::uint64_t n = 0;
    for (const Subscription& s : w.subs) n += subject_matches(s.pattern, subject);
    benchmark::DoNotOptimize(n);
    handles += n;
  }
  state.counters["handles_per_match"] =
      benchmark::Counter(static_cast<double>(handles) / static_cast<double>(state.iterations()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_BaselineBruteForceScan);

// Baseline: one lookup of a subject in a flat hash map of the 1024 hot subjects, the floor
// for a cache hit.
void BM_BaselineHashLookup(benchmark::State& state) {
  const auto& subjects = workload().hot;
  boost::unordered_flat_map<std::string_view, std::uint32_t, detail::StringHash> map;
  for (std::uint32_t k = 0; k < subjects.size(); ++k) map.emplace(subjects[k], k);
  std::size_t i = 0;
  for (auto _ : state) {
    auto it = map.find(subjects[i++ & (kHotSubjects - 1)]);
    benchmark::DoNotOptimize(it);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_BaselineHashLookup);

// One insert and one remove of a literal subscription among 100,000, with the hot subjects
// cached: validation, the trie walk (creating and pruning a leaf) and one cache lookup each.
void BM_InsertRemoveLiteral(benchmark::State& state) {
  auto sl = make_sublist();
  for (const auto& s : workload().hot) sl->match(s);
  const std::string pattern = "t7.r3.d123.mNEW";
  for (auto _ : state) {
    if (!sl->insert(pattern, "", 1'000'000).is_ok()) state.SkipWithError("insert failed");
    benchmark::DoNotOptimize(sl->remove(pattern, "", 1'000'000));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_InsertRemoveLiteral);

// One insert and one remove of a wildcard subscription among 100,000. Arg 0: empty cache.
// Arg 1: 4096 cached subjects, so each call scans the cache with subject_matches (and the
// pattern matches none of them, so nothing is dropped and the next iteration scans again).
void BM_InsertRemoveWildcard(benchmark::State& state) {
  auto sl = make_sublist();
  if (state.range(0)) {
    for (std::size_t i = 0; sl->stats().cache_entries < sl->options().cache_max_entries; ++i) {
      sl->match(workload().cold[i]);
    }
  }
  const std::string pattern = "tNEW.*.d123.>";
  for (auto _ : state) {
    if (!sl->insert(pattern, "", 1'000'000).is_ok()) state.SkipWithError("insert failed");
    benchmark::DoNotOptimize(sl->remove(pattern, "", 1'000'000));
  }
  state.counters["cache_entries"] = benchmark::Counter(static_cast<double>(sl->stats().cache_entries));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_InsertRemoveWildcard)->Arg(0)->Arg(1);

// Building the index from nothing: 100,000 inserts (the time is per iteration; divide by
// 100,000, or read items_per_second). Destruction is not timed.
void BM_Build100k(benchmark::State& state) {
  const Workload& w = workload();
  for (auto _ : state) {
    auto sl = std::make_unique<Sublist>();
    for (std::size_t i = 0; i < w.subs.size(); ++i) {
      benchmark::DoNotOptimize(sl->insert(w.subs[i].pattern, w.subs[i].queue, i).is_ok());
    }
    state.PauseTiming();
    sl.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kSubscriptions);
}
BENCHMARK(BM_Build100k)->Unit(benchmark::kMillisecond);

// Removing all 100,000 subscriptions (the index is rebuilt, untimed, before each iteration).
void BM_Teardown100k(benchmark::State& state) {
  const Workload& w = workload();
  for (auto _ : state) {
    state.PauseTiming();
    auto sl = make_sublist();
    state.ResumeTiming();
    for (std::size_t i = 0; i < w.subs.size(); ++i) {
      benchmark::DoNotOptimize(sl->remove(w.subs[i].pattern, w.subs[i].queue, i));
    }
    state.PauseTiming();
    sl.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kSubscriptions);
}
BENCHMARK(BM_Teardown100k)->Unit(benchmark::kMillisecond);

// Validating a typical publish subject, as the broker does for every PUB.
void BM_ValidatePublishSubject(benchmark::State& state) {
  const std::string subject = "orders.eu.fr.paris";
  for (auto _ : state) benchmark::DoNotOptimize(validate_publish_subject(subject).is_ok());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_ValidatePublishSubject);

// One subject_matches call (a permission check), pattern with both wildcards.
void BM_SubjectMatches(benchmark::State& state) {
  const std::string pattern = "orders.*.fr.>";
  const std::string subject = "orders.eu.fr.paris";
  for (auto _ : state) {
    benchmark::DoNotOptimize(subject_matches(pattern, subject));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_SubjectMatches);

}  // namespace
}  // namespace slip::broker

BENCHMARK_MAIN();
