// nn::summarize and format_summary (include/adnn/nn/summary.hpp).
#include <adnn/nn/summary.hpp>

#include <cxxabi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <typeinfo>

namespace adnn::nn {

namespace {

// "adnn::nn::MBConv" -> "MBConv"
std::string class_name(const Module& m) {
  const char* mangled = typeid(m).name();
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  std::string s = status == 0 && d ? d.get() : mangled;
  if (const size_t p = s.rfind("::"); p != std::string::npos && s.find('<') == std::string::npos) s = s.substr(p + 2);
  return s;
}

std::string parent_of(const std::string& name) {
  const size_t p = name.rfind('.');
  return p == std::string::npos ? std::string() : name.substr(0, p);
}

std::string mb(int64_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", double(bytes) / 1e6);
  return b;
}

}  // namespace

std::string thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

ModelSummary summarize(Module& model, const Shape& input, Device device) {
  ADNN_CHECK(!input.empty(), "summarize: the input shape needs at least a batch dim, got ", shape_str(input));
  ModelSummary s;
  s.input = input;
  s.device = device;
  const auto mods = model.named_modules();  // (name, module), depth first in registration order
  const size_t n = mods.size();
  std::map<const Module*, size_t> index;  // a module registered twice is observed once
  for (size_t i = 0; i < n; ++i) index.emplace(mods[i].second, i);

  std::vector<LayerSummary> rows(n);
  std::vector<int64_t> first_call(n, std::numeric_limits<int64_t>::max());
  std::vector<std::vector<int64_t>> started(n);  // MAC count at each open call (re-entrant)
  std::vector<size_t> parent(n, 0);
  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < n; ++i) by_name[mods[i].first] = i;
  for (size_t i = 0; i < n; ++i) {
    LayerSummary& r = rows[i];
    r.name = mods[i].first;
    r.type = class_name(*mods[i].second);
    r.depth = r.name.empty() ? 0 : int(std::count(r.name.begin(), r.name.end(), '.')) + 1;
    for (auto& [pn, p] : mods[i].second->named_parameters()) {
      r.params += p.numel();
      if (p.requires_grad()) r.trainable += p.numel();
    }
    if (i > 0) parent[i] = by_name.at(parent_of(r.name));
  }
  for (size_t i = 0; i < n; ++i) rows[i].leaf = true;
  for (size_t i = 1; i < n; ++i) rows[parent[i]].leaf = false;

  for (auto& [pn, p] : model.named_parameters()) {
    s.params += p.numel();
    if (p.requires_grad()) s.trainable += p.numel();
    s.param_bytes += p.numel() * int64_t(p.element_size());
  }
  for (auto& [bn, b] : model.named_buffers()) s.buffer_bytes += b.numel() * int64_t(b.element_size());

  model.to(device);
  model.eval();
  int64_t seq = 0;
  {
    Module::HookGuard guard;
    for (auto& [m, i] : index) {
      Module* mod = const_cast<Module*>(m);
      const size_t k = i;
      guard.add(mod->register_forward_pre_hook([&, k](Module&, const Tensor&, const Tensor&) {
        if (first_call[k] == std::numeric_limits<int64_t>::max()) first_call[k] = seq++;
        started[k].push_back(mac_count());
        return Tensor();
      }));
      guard.add(mod->register_forward_hook([&, k](Module&, const Tensor&, const Tensor& y) {
        LayerSummary& r = rows[k];
        r.macs += mac_count() - started[k].back();
        started[k].pop_back();
        ++r.calls;
        r.output = y.sizes();
        if (r.leaf) s.activation_bytes += y.numel() * int64_t(y.element_size());
        return Tensor();
      }));
    }
    NoGradGuard ng;
    Tensor x = zeros(input).to(device);  // e.g. (1, H, W, C)
    s.input_bytes = x.numel() * int64_t(x.element_size());
    MacCounter total;
    model(x);
    s.macs = total.macs();
  }
  // a container never called itself (its parent runs its entries: EfficientNet's blocks)
  // shows the MACs of its entries (preorder: every child's index is above its parent's)
  for (size_t i = n; i-- > 1;)
    if (rows[parent[i]].calls == 0) rows[parent[i]].macs += rows[i].macs;
  // ... a lower bound when its called ancestor's MACs exceed the sum of that ancestor's
  // children (ops of its own, or of a module run through another method than forward)
  std::vector<int64_t> child_sum(n, 0);
  for (size_t i = 1; i < n; ++i) child_sum[parent[i]] += rows[i].macs;
  for (size_t i = 1; i < n; ++i) {
    const size_t p = parent[i];
    if (rows[i].calls == 0 && !rows[i].leaf)
      rows[i].macs_at_least = rows[p].calls > 0 ? child_sum[p] < rows[p].macs : rows[p].macs_at_least;
  }
  // first-run order: a module sorts by the first call in its subtree (one never called, and
  // with nothing called below it, after its called siblings, in registration order)
  std::vector<int64_t> key = first_call;
  for (size_t i = n; i-- > 1;) key[parent[i]] = std::min(key[parent[i]], key[i]);
  std::vector<std::vector<size_t>> children(n);
  for (size_t i = 1; i < n; ++i) children[parent[i]].push_back(i);
  for (auto& c : children) std::stable_sort(c.begin(), c.end(), [&](size_t a, size_t b) { return key[a] < key[b]; });
  std::vector<size_t> stack{0};
  while (!stack.empty()) {
    const size_t i = stack.back();
    stack.pop_back();
    s.layers.push_back(rows[i]);
    for (auto it = children[i].rbegin(); it != children[i].rend(); ++it) stack.push_back(*it);
  }
  return s;
}

std::string format_summary(const ModelSummary& s, int depth) {
  struct Row {
    std::string layer, shape, params, macs;
  };
  std::vector<Row> rows;
  rows.push_back({"Layer (type)", "Output shape", "Param #", "MACs"});
  for (const LayerSummary& l : s.layers) {
    if (depth >= 0 && l.depth > depth) continue;
    const std::string label = l.name.empty() ? l.type : l.name.substr(l.name.rfind('.') + 1) + " (" + l.type + ")";
    std::string indent;
    for (int d = 1; d < l.depth; ++d) indent += "  ";
    if (l.depth > 0) indent += "└─";
    rows.push_back({indent + label, l.calls ? shape_str(l.output) : "--", l.params ? thousands(l.params) : "--",
                    l.calls || l.macs ? (l.macs_at_least ? "≥" : "") + thousands(l.macs) : "--"});
  }
  size_t w[4] = {0, 0, 0, 0};
  auto width = [](const std::string& t) {  // display columns: UTF-8 continuation bytes take none
    size_t c = 0;
    for (unsigned char ch : t) c += (ch & 0xC0) != 0x80;
    return c;
  };
  for (const Row& r : rows) {
    w[0] = std::max(w[0], width(r.layer));
    w[1] = std::max(w[1], width(r.shape));
    w[2] = std::max(w[2], width(r.params));
    w[3] = std::max(w[3], width(r.macs));
  }
  const size_t total = w[0] + w[1] + w[2] + w[3] + 6;
  const std::string rule(total, '='), thin(total, '-');
  std::string out = rule + "\n";
  auto pad_right = [&](const std::string& t, size_t n) { return t + std::string(n - width(t), ' '); };
  auto pad_left = [&](const std::string& t, size_t n) { return std::string(n - width(t), ' ') + t; };
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    out += pad_right(r.layer, w[0]) + "  " + pad_right(r.shape, w[1]) + "  " + pad_left(r.params, w[2]) + "  " +
           pad_left(r.macs, w[3]) + "\n";
    if (i == 0) out += rule + "\n";
  }
  char line[160];
  out += rule + "\n";
  out += "Total params: " + thousands(s.params) + "\n";
  out += "Trainable params: " + thousands(s.trainable) + "\n";
  out += "Non-trainable params: " + thousands(s.params - s.trainable) + "\n";
  std::snprintf(line, sizeof line, "Total MACs: %s (%.3f G) for input %s\n", thousands(s.macs).c_str(),
                double(s.macs) / 1e9, shape_str(s.input).c_str());
  out += line;
  out += thin + "\n";
  out += "Input size (MB): " + mb(s.input_bytes) + "\n";
  out += "Forward/backward pass size (MB): " + mb(2 * s.activation_bytes) +
         " (estimate: every leaf module's output and its gradient)\n";
  out += "Params size (MB): " + mb(s.param_bytes) + "\n";
  out += "Buffers size (MB): " + mb(s.buffer_bytes) + "\n";
  out += "Estimated total size (MB): " + mb(s.input_bytes + 2 * s.activation_bytes + s.param_bytes + s.buffer_bytes) +
         "\n";
  out += rule + "\n";
  return out;
}

}  // namespace adnn::nn
