#pragma once
// A registry of Prometheus metric families (counters, gauges, histograms with labels) and their
// text exposition, format 0.0.4. Increments are atomics on pre-resolved handles; only looking a
// label set up takes the family's mutex.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dagent::observe {

/// Label sets a family holds by default; past it, new sets are counted under the first label's
/// value "other" (the first label is the one whose values may come from outside).
inline constexpr std::size_t k_default_max_series = 500;
/// A label value longer than this (bytes) is cut, at a character boundary.
inline constexpr std::size_t k_max_label_value = 128;
/// The value the first label takes once a family holds its cap of label sets.
inline constexpr std::string_view k_overflow_label = "other";

struct CounterCell {
  std::atomic<std::uint64_t> value{0};
};

struct GaugeCell {
  std::atomic<std::int64_t> value{0};
};

struct HistogramCell {
  explicit HistogramCell(std::size_t bounds) : buckets(bounds + 1) {}
  std::vector<std::atomic<std::uint64_t>> buckets;  ///< per bucket, not cumulative; the last is +Inf
  std::atomic<double> sum{0};
};

/// One label set of a counter family. Copyable, cheap; valid as long as its registry.
class Counter {
 public:
  explicit Counter(CounterCell* cell = nullptr) noexcept : cell_(cell) {}
  void inc(std::uint64_t n = 1) const noexcept { cell_->value.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return cell_->value.load(std::memory_order_relaxed); }

 private:
  CounterCell* cell_;
};

/// One label set of a gauge family.
class Gauge {
 public:
  explicit Gauge(GaugeCell* cell = nullptr) noexcept : cell_(cell) {}
  void inc(std::int64_t n = 1) const noexcept { cell_->value.fetch_add(n, std::memory_order_relaxed); }
  void dec(std::int64_t n = 1) const noexcept { cell_->value.fetch_sub(n, std::memory_order_relaxed); }
  void set(std::int64_t v) const noexcept { cell_->value.store(v, std::memory_order_relaxed); }
  std::int64_t value() const noexcept { return cell_->value.load(std::memory_order_relaxed); }

 private:
  GaugeCell* cell_;
};

/// One label set of a histogram family.
class Histogram {
 public:
  Histogram(HistogramCell* cell = nullptr, const std::vector<double>* bounds = nullptr) noexcept
      : cell_(cell), bounds_(bounds) {}
  /// Counts `v` in the first bucket whose upper bound is >= v (NaN in +Inf only).
  void observe(double v) const noexcept;
  std::uint64_t count() const noexcept;
  double sum() const noexcept { return cell_->sum.load(std::memory_order_relaxed); }
  /// Observations <= bounds()[i] (cumulative, as exposed); i == bounds().size(): all of them.
  std::uint64_t cumulative(std::size_t i) const noexcept;
  const std::vector<double>& bounds() const noexcept { return *bounds_; }

 private:
  HistogramCell* cell_;
  const std::vector<double>* bounds_;
};

/// Holds +1 on a gauge from take() until release() or destruction: "how many are there now"
/// stays right however its owner goes away. Move-only.
class GaugeLease {
 public:
  GaugeLease() = default;
  GaugeLease(const GaugeLease&) = delete;
  GaugeLease& operator=(const GaugeLease&) = delete;
  GaugeLease(GaugeLease&& other) noexcept : gauge_(other.gauge_), held_(std::exchange(other.held_, false)) {}
  GaugeLease& operator=(GaugeLease&& other) noexcept;
  ~GaugeLease() { release(); }
  void take(Gauge gauge) noexcept;
  void release() noexcept;

 private:
  Gauge gauge_;
  bool held_ = false;
};

enum class MetricType { counter, gauge, histogram };

/// A metric family: name, help, label names, and its label sets in label-value order.
class Family {
 public:
  Family(MetricType type, std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds, std::size_t max_series);
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  MetricType type() const noexcept { return type_; }
  const std::string& name() const noexcept { return name_; }
  const std::vector<std::string>& label_names() const noexcept { return labels_; }
  /// Label sets held (the overflow sets included).
  std::size_t series() const;

  /// The handle of a label set (created at zero if new); values are cut to k_max_label_value and
  /// made valid UTF-8. The count of values must equal the label names' (std::invalid_argument).
  Counter counter(std::initializer_list<std::string_view> values = {});
  Gauge gauge(std::initializer_list<std::string_view> values = {});
  Histogram histogram(std::initializer_list<std::string_view> values = {});

  void render(std::string& out) const;

 private:
  struct Series {
    std::unique_ptr<CounterCell> counter;
    std::unique_ptr<GaugeCell> gauge;
    std::unique_ptr<HistogramCell> histogram;
  };
  Series& find_or_add(std::initializer_list<std::string_view> values, MetricType wanted);

  MetricType type_;
  std::string name_;
  std::string help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_;
  std::size_t max_series_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, Series> series_;
};

/// The families of a process (see registry()) or of a test.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// Registers a family, or returns the one of that name. Names follow Prometheus rules; a
  /// counter's ends in `_total`; histogram bounds are finite and increasing. A name registered
  /// again with another type or labels, or a bad name, is a programmer error (std::invalid_argument).
  Family& counter(std::string name, std::string help, std::vector<std::string> labels = {},
                  std::size_t max_series = k_default_max_series);
  Family& gauge(std::string name, std::string help, std::vector<std::string> labels = {},
                std::size_t max_series = k_default_max_series);
  Family& histogram(std::string name, std::string help, std::vector<std::string> labels, std::vector<double> bounds,
                    std::size_t max_series = k_default_max_series);

  /// The text exposition (format 0.0.4) of every family, in registration order.
  std::string render() const;

 private:
  Family& add(MetricType type, std::string name, std::string help, std::vector<std::string> labels,
              std::vector<double> bounds, std::size_t max_series);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;
};

/// The process-wide registry that dagent's own metrics live in.
Registry& registry();

/// A label value as the exposition writes it: backslash, double quote and newline escaped.
std::string escape_label_value(std::string_view value);
/// A number as the exposition writes it: shortest round-trip form, +Inf, -Inf, NaN.
std::string format_number(double v);

}  // namespace dagent::observe
