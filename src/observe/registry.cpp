#include "observe/registry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

#include "text/utf8.hpp"

namespace dagent::observe {

namespace {

bool valid_name(std::string_view name, bool label) {
  if (name.empty()) return false;
  auto head = [&](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!label && c == ':'); };
  if (!head(name[0])) return false;
  return std::all_of(name.begin() + 1, name.end(), [&](char c) { return head(c) || (c >= '0' && c <= '9'); });
}

// HELP text escapes backslash and newline only (format 0.0.4).
std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string_view type_name(MetricType t) {
  switch (t) {
    case MetricType::counter: return "counter";
    case MetricType::gauge: return "gauge";
    case MetricType::histogram: return "histogram";
  }
  return "untyped";
}

// `{a="x",b="y"}` for the names and values, with `extra` (le="…") last; empty without labels.
void append_labels(std::string& out, const std::vector<std::string>& names, const std::vector<std::string>& values,
                   std::string_view extra = {}) {
  if (names.empty() && extra.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) out += ',';
    out += names[i];
    out += "=\"";
    out += escape_label_value(values[i]);
    out += '"';
  }
  if (!extra.empty()) {
    if (!names.empty()) out += ',';
    out += extra;
  }
  out += '}';
}

std::string clean_value(std::string_view v) {
  v = v.substr(0, text::utf8_cut(v, k_max_label_value));
  return text::valid_utf8(v);
}

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc{} ? std::string(buf, end) : std::string("NaN");
}

// --- handles -----------------------------------------------------------------------------------

void Histogram::observe(double v) const noexcept {
  const auto& b = *bounds_;
  // NaN compares false with every bound: it lands in +Inf.
  const auto i = static_cast<std::size_t>(std::find_if(b.begin(), b.end(), [v](double bound) { return v <= bound; }) - b.begin());
  cell_->buckets[i].fetch_add(1, std::memory_order_relaxed);
  cell_->sum.fetch_add(v, std::memory_order_relaxed);
}

std::uint64_t Histogram::cumulative(std::size_t i) const noexcept {
  std::uint64_t n = 0;
  for (std::size_t k = 0; k <= i && k < cell_->buckets.size(); ++k) n += cell_->buckets[k].load(std::memory_order_relaxed);
  return n;
}

std::uint64_t Histogram::count() const noexcept { return cumulative(bounds_->size()); }

GaugeLease& GaugeLease::operator=(GaugeLease&& other) noexcept {
  if (this != &other) {
    release();
    gauge_ = other.gauge_;
    held_ = std::exchange(other.held_, false);
  }
  return *this;
}

void GaugeLease::take(Gauge gauge) noexcept {
  release();
  gauge_ = gauge;
  gauge_.inc();
  held_ = true;
}

void GaugeLease::release() noexcept {
  if (std::exchange(held_, false)) gauge_.dec();
}

// --- families ----------------------------------------------------------------------------------

Family::Family(MetricType type, std::string name, std::string help, std::vector<std::string> labels,
               std::vector<double> bounds, std::size_t max_series)
    : type_(type), name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)),
      bounds_(std::move(bounds)), max_series_(std::max<std::size_t>(max_series, 1)) {}

std::size_t Family::series() const {
  std::lock_guard lock(mutex_);
  return series_.size();
}

Family::Series& Family::find_or_add(std::initializer_list<std::string_view> values, MetricType wanted) {
  if (wanted != type_) throw std::invalid_argument(name_ + ": not a " + std::string(type_name(wanted)));
  if (values.size() != labels_.size())
    throw std::invalid_argument(name_ + ": " + std::to_string(labels_.size()) + " label values expected");
  std::vector<std::string> key;
  key.reserve(values.size());
  for (auto v : values) key.push_back(clean_value(v));
  std::lock_guard lock(mutex_);
  auto it = series_.find(key);
  if (it != series_.end()) return it->second;
  // Why: label values from plans and servers are untrusted; past the cap a family grows only by
  // the other labels' (fixed) values.
  if (series_.size() >= max_series_ && !key.empty()) {
    key[0] = std::string(k_overflow_label);
    it = series_.find(key);
    if (it != series_.end()) return it->second;
  }
  Series s;
  switch (type_) {
    case MetricType::counter: s.counter = std::make_unique<CounterCell>(); break;
    case MetricType::gauge: s.gauge = std::make_unique<GaugeCell>(); break;
    case MetricType::histogram: s.histogram = std::make_unique<HistogramCell>(bounds_.size()); break;
  }
  return series_.emplace(std::move(key), std::move(s)).first->second;
}

Counter Family::counter(std::initializer_list<std::string_view> values) {
  return Counter(find_or_add(values, MetricType::counter).counter.get());
}

Gauge Family::gauge(std::initializer_list<std::string_view> values) {
  return Gauge(find_or_add(values, MetricType::gauge).gauge.get());
}

Histogram Family::histogram(std::initializer_list<std::string_view> values) {
  return Histogram(find_or_add(values, MetricType::histogram).histogram.get(), &bounds_);
}

void Family::render(std::string& out) const {
  out += "# HELP " + name_ + ' ' + escape_help(help_) + '\n';
  out += "# TYPE " + name_ + ' ' + std::string(type_name(type_)) + '\n';
  std::lock_guard lock(mutex_);
  for (const auto& [values, s] : series_) {
    switch (type_) {
      case MetricType::counter:
        out += name_;
        append_labels(out, labels_, values);
        out += ' ' + std::to_string(s.counter->value.load(std::memory_order_relaxed)) + '\n';
        break;
      case MetricType::gauge:
        out += name_;
        append_labels(out, labels_, values);
        out += ' ' + std::to_string(s.gauge->value.load(std::memory_order_relaxed)) + '\n';
        break;
      case MetricType::histogram: {
        // Cumulative counts from one read of each bucket, so +Inf and _count agree even while
        // observations land.
        std::uint64_t total = 0;
        for (std::size_t i = 0; i <= bounds_.size(); ++i) {
          total += s.histogram->buckets[i].load(std::memory_order_relaxed);
          out += name_ + "_bucket";
          append_labels(out, labels_, values,
                        "le=\"" + (i < bounds_.size() ? format_number(bounds_[i]) : std::string("+Inf")) + '"');
          out += ' ' + std::to_string(total) + '\n';
        }
        out += name_ + "_sum";
        append_labels(out, labels_, values);
        out += ' ' + format_number(s.histogram->sum.load(std::memory_order_relaxed)) + '\n';
        out += name_ + "_count";
        append_labels(out, labels_, values);
        out += ' ' + std::to_string(total) + '\n';
        break;
      }
    }
  }
}

// --- registry ----------------------------------------------------------------------------------

Family& Registry::add(MetricType type, std::string name, std::string help, std::vector<std::string> labels,
                      std::vector<double> bounds, std::size_t max_series) {
  if (!valid_name(name, false)) throw std::invalid_argument("not a metric name: " + name);
  if (type == MetricType::counter && !name.ends_with("_total"))
    throw std::invalid_argument("a counter's name ends in _total: " + name);
  for (const auto& l : labels)
    if (!valid_name(l, true) || l.starts_with("__") || l == "le")
      throw std::invalid_argument(name + ": not a label name: " + l);
  for (std::size_t i = 0; i < bounds.size(); ++i)
    if (!std::isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
      throw std::invalid_argument(name + ": bucket bounds must be finite and increasing");
  std::lock_guard lock(mutex_);
  for (const auto& f : families_) {
    if (f->name() != name) continue;
    if (f->type() != type || f->label_names() != labels)
      throw std::invalid_argument(name + ": registered already with another type or labels");
    return *f;
  }
  families_.push_back(std::make_unique<Family>(type, std::move(name), std::move(help), std::move(labels),
                                               std::move(bounds), max_series));
  return *families_.back();
}

Family& Registry::counter(std::string name, std::string help, std::vector<std::string> labels, std::size_t max_series) {
  return add(MetricType::counter, std::move(name), std::move(help), std::move(labels), {}, max_series);
}

Family& Registry::gauge(std::string name, std::string help, std::vector<std::string> labels, std::size_t max_series) {
  return add(MetricType::gauge, std::move(name), std::move(help), std::move(labels), {}, max_series);
}

Family& Registry::histogram(std::string name, std::string help, std::vector<std::string> labels,
                            std::vector<double> bounds, std::size_t max_series) {
  return add(MetricType::histogram, std::move(name), std::move(help), std::move(labels), std::move(bounds), max_series);
}

std::string Registry::render() const {
  std::string out;
  std::lock_guard lock(mutex_);
  for (const auto& f : families_) f->render(out);
  return out;
}

Registry& registry() {
  // Never destroyed: a connection or run that a static object (an embedding program's Runtime)
  // ends at exit still updates its gauges, whatever the order of static destruction.
  static Registry* instance = new Registry;
  return *instance;
}

}  // namespace dagent::observe
