// Flat JSON objects of strings (include/adnn/io/json.hpp).
#include <adnn/core/error.hpp>
#include <adnn/io/json.hpp>
#include <adnn/io/safetensors.hpp>

#include <cstdint>
#include <cstdio>
#include <sstream>
#include <vector>

namespace adnn::io {

std::string write_json_object(const std::map<std::string, std::string>& m) {
  std::ostringstream o;
  o << "{\n";
  size_t i = 0;
  for (auto& [k, v] : m) {
    o << "  \"";
    for (const std::string* t : {&k, &v}) {
      for (char ch : *t) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
          o << '\\' << ch;
        } else if (c < 0x20) {
          char u[8];
          std::snprintf(u, sizeof u, "\\u%04x", unsigned(c));
          o << u;
        } else {
          o << ch;
        }
      }
      if (t == &k) o << "\": \"";
    }
    o << "\"" << (++i < m.size() ? "," : "") << "\n";
  }
  o << "}\n";
  return o.str();
}

std::map<std::string, std::string> parse_json_object(std::string_view t, const std::string& what) {
  size_t i = 0;
  auto fail = [&](const char* why) { ADNN_FAIL(what, ": not a flat JSON object of strings (", why, " at byte ", i, ")"); };
  auto ws = [&] {
    while (i < t.size() && (t[i] == ' ' || t[i] == '\n' || t[i] == '\t' || t[i] == '\r')) ++i;
  };
  auto expect = [&](char c, const char* why) {
    ws();
    if (i >= t.size() || t[i] != c) fail(why);
    ++i;
  };
  auto str = [&] {
    expect('"', "expected a string");
    std::string v;
    while (true) {
      if (i >= t.size()) fail("unterminated string");
      const char c = t[i++];
      if (c == '"') return v;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') {
        v += c;
        continue;
      }
      if (i >= t.size()) fail("unterminated escape");
      const char e = t[i++];
      if (e == '"' || e == '\\' || e == '/') {
        v += e;
      } else if (e == 'n') {
        v += '\n';
      } else if (e == 't') {
        v += '\t';
      } else if (e == 'u' && i + 4 <= t.size()) {
        const uint64_t u = [&] {
          uint64_t x = 0;
          for (size_t k = 0; k < 4; ++k) {
            const char h = t[i + k];
            const int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (d < 0) fail("bad \\u escape");
            x = x * 16 + uint64_t(d);
          }
          return x;
        }();
        if (u >= 0x80) fail("\\u escape beyond ASCII");
        i += 4;
        v += char(u);
      } else {
        fail("unknown escape");
      }
    }
  };
  std::map<std::string, std::string> m;
  expect('{', "expected '{'");
  ws();
  if (i < t.size() && t[i] == '}') {
    ++i;
  } else {
    while (true) {
      std::string k = str();
      expect(':', "expected ':'");
      std::string v = str();
      if (!m.emplace(std::move(k), std::move(v)).second) fail("duplicate key");
      ws();
      if (i < t.size() && t[i] == ',') {
        ++i;
        continue;
      }
      expect('}', "expected ',' or '}'");
      break;
    }
  }
  ws();
  if (i != t.size()) fail("trailing characters");
  return m;
}

std::map<std::string, std::string> read_json_object(const std::string& path) {
  const std::vector<uint8_t> b = read_file(path, uint64_t(16) << 20);
  return parse_json_object(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), path);
}

}  // namespace adnn::io
