// safetensors reader/writer with a strict JSON header parser.
#include <adnn/io/safetensors.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace adnn::io {

namespace {

constexpr uint64_t kMaxHeader = 100u << 20;  // 100 MiB, as the reference implementation
constexpr uint64_t kMaxElements = uint64_t(1) << 48;  // per tensor; times 8 bytes still fits 64 bits

const char* st_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
    case DType::boolean: return "BOOL";
  }
  return "?";
}
bool st_dtype(const std::string& s, DType& t) {
  for (DType d : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8, DType::boolean})
    if (s == st_name(d)) {
      t = d;
      return true;
    }
  return false;
}

// Minimal strict JSON: objects, arrays, strings, non-negative integers.
struct Json {
  enum Kind { object, array, string, number } kind = object;
  std::vector<std::pair<std::string, Json>> members;
  std::vector<Json> items;
  std::string str;
  uint64_t num = 0;
  // declared here, defined once Json is complete: an implicit constructor would instantiate
  // vector<pair<string, Json>> with an incomplete Json, which clang with libstdc++ refuses
  Json();
};
Json::Json() = default;

class Parser {
 public:
  Parser(const char* p, size_t n, const std::string& file) : p_(p), end_(p + n), file_(file) {}
  Json parse_document() {
    Json j = value(0);
    ws();
    if (p_ != end_) fail("trailing characters after the header object");
    return j;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    ADNN_FAIL("safetensors: ", file_, ": malformed header: ", what);
  }
  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  char peek() {
    ws();
    if (p_ >= end_) fail("unexpected end");
    return *p_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++p_;
  }
  Json value(int depth) {
    if (depth > 8) fail("nested too deeply");
    char c = peek();
    Json j;
    if (c == '{') {
      j.kind = Json::object;
      ++p_;
      if (peek() == '}') {
        ++p_;
        return j;
      }
      for (;;) {
        if (peek() != '"') fail("expected a key");
        std::string k = string();
        expect(':');
        for (auto& m : j.members)
          if (m.first == k) fail("duplicate key '" + k + "'");
        j.members.emplace_back(k, value(depth + 1));
        if (peek() == ',') {
          ++p_;
          continue;
        }
        expect('}');
        return j;
      }
    }
    if (c == '[') {
      j.kind = Json::array;
      ++p_;
      if (peek() == ']') {
        ++p_;
        return j;
      }
      for (;;) {
        j.items.push_back(value(depth + 1));
        if (peek() == ',') {
          ++p_;
          continue;
        }
        expect(']');
        return j;
      }
    }
    if (c == '"') {
      j.kind = Json::string;
      j.str = string();
      return j;
    }
    if (c >= '0' && c <= '9') {
      j.kind = Json::number;
      int digits = 0;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
        if (++digits > 18) fail("number too large");
        j.num = j.num * 10 + uint64_t(*p_++ - '0');
      }
      return j;
    }
    fail(std::string("unexpected character '") + c + "'");
  }
  std::string string() {
    expect('"');
    std::string s;
    while (true) {
      if (p_ >= end_) fail("unterminated string");
      char c = *p_++;
      if (c == '"') return s;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') {
        s += c;
        continue;
      }
      if (p_ >= end_) fail("unterminated escape");
      char e = *p_++;
      switch (e) {
        case '"': s += '"'; break;
        case '\\': s += '\\'; break;
        case '/': s += '/'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'n': s += '\n'; break;
        case 'r': s += '\r'; break;
        case 't': s += '\t'; break;
        case 'u': {
          if (end_ - p_ < 4) fail("short \\u escape");
          unsigned v = 0;
          for (int i = 0; i < 4; ++i) {
            char h = *p_++;
            v <<= 4;
            if (h >= '0' && h <= '9') v |= unsigned(h - '0');
            else if (h >= 'a' && h <= 'f') v |= unsigned(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') v |= unsigned(h - 'A' + 10);
            else fail("bad \\u escape");
          }
          if (v < 0x80) s += char(v);
          else if (v < 0x800) { s += char(0xC0 | (v >> 6)); s += char(0x80 | (v & 0x3F)); }
          else { s += char(0xE0 | (v >> 12)); s += char(0x80 | ((v >> 6) & 0x3F)); s += char(0x80 | (v & 0x3F)); }
          break;
        }
        default: fail("bad escape");
      }
    }
  }
  const char* p_;
  const char* end_;
  std::string file_;
};

void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  out += '"';
}

}  // namespace

const Tensor* SafeTensors::find(const std::string& name) const {
  for (auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

SafeTensors parse_safetensors(const std::vector<uint8_t>& bytes, const std::string& file) {
  ADNN_CHECK(bytes.size() >= 8, "safetensors: ", file, ": truncated (", bytes.size(), " bytes, no header length)");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | bytes[size_t(i)];
  ADNN_CHECK(hlen <= kMaxHeader, "safetensors: ", file, ": header length ", hlen, " exceeds ", kMaxHeader, " bytes");
  ADNN_CHECK(hlen <= bytes.size() - 8, "safetensors: ", file, ": truncated (header of ", hlen, " bytes, file of ",
             bytes.size(), ")");
  Parser parser(reinterpret_cast<const char*>(bytes.data()) + 8, size_t(hlen), file);
  Json root = parser.parse_document();
  ADNN_CHECK(root.kind == Json::object, "safetensors: ", file, ": header is not an object");
  const uint64_t data_start = 8 + hlen, data_len = bytes.size() - data_start;
  SafeTensors st;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, v] : root.members) {
    if (name == "__metadata__") {
      ADNN_CHECK(v.kind == Json::object, "safetensors: ", file, ": __metadata__ must be an object of strings");
      for (auto& [k, s] : v.members) {
        ADNN_CHECK(s.kind == Json::string, "safetensors: ", file, ": metadata '", k, "' is not a string");
        st.metadata[k] = s.str;
      }
      continue;
    }
    ADNN_CHECK(v.kind == Json::object, "safetensors: ", file, ": entry '", name, "' is not an object");
    const Json *dt = nullptr, *shape = nullptr, *offs = nullptr;
    for (auto& [k, f] : v.members) {
      if (k == "dtype") dt = &f;
      else if (k == "shape") shape = &f;
      else if (k == "data_offsets") offs = &f;
      else ADNN_FAIL("safetensors: ", file, ": tensor '", name, "' has an unknown field '", k, "'");
    }
    ADNN_CHECK(dt && shape && offs, "safetensors: ", file, ": tensor '", name, "' needs dtype, shape and data_offsets");
    DType dtype;
    ADNN_CHECK(dt->kind == Json::string && st_dtype(dt->str, dtype), "safetensors: ", file, ": tensor '", name,
               "' has an unsupported dtype '", dt->str, "'");
    ADNN_CHECK(shape->kind == Json::array && offs->kind == Json::array && offs->items.size() == 2,
               "safetensors: ", file, ": tensor '", name, "' has a bad shape or data_offsets");
    Shape sz;
    uint64_t nonzero = 1;  // product of the non-zero dimensions: the largest stride
    bool has_zero = false;
    for (auto& d : shape->items) {
      ADNN_CHECK(d.kind == Json::number && d.num < (uint64_t(1) << 40), "safetensors: ", file, ": tensor '", name,
                 "' has a bad dimension");
      sz.push_back(int64_t(d.num));
      if (d.num == 0) {
        has_zero = true;
        continue;
      }
      // checked before multiplying: [2^32, 2^32] must not wrap to 0 elements
      ADNN_CHECK(nonzero <= kMaxElements / d.num, "safetensors: ", file, ": tensor '", name, "' of shape ",
                 shape_str(sz), "... has more than ", kMaxElements, " elements");
      nonzero *= d.num;
    }
    const uint64_t numel = has_zero ? 0 : nonzero;
    ADNN_CHECK(offs->items[0].kind == Json::number && offs->items[1].kind == Json::number, "safetensors: ", file,
               ": tensor '", name, "' has non-numeric data_offsets");
    const uint64_t b = offs->items[0].num, e = offs->items[1].num;
    ADNN_CHECK(b <= e && e <= data_len, "safetensors: ", file, ": tensor '", name, "' data [", b, ", ", e,
               ") lies outside the ", data_len, " data bytes (truncated file?)");
    ADNN_CHECK(e - b == numel * dtype_size(dtype), "safetensors: ", file, ": tensor '", name, "' has ", e - b,
               " bytes but ", dt->str, shape_str(sz), " needs ", numel * dtype_size(dtype));
    Tensor t = empty(sz, dtype);
    if (e > b) std::memcpy(t.data_ptr(), bytes.data() + data_start + b, size_t(e - b));
    st.tensors.emplace_back(name, t);
    ranges.push_back({b, e});
  }
  // the data must be exactly covered, without overlaps
  std::sort(ranges.begin(), ranges.end());
  uint64_t pos = 0;
  for (auto [b, e] : ranges) {
    ADNN_CHECK(b == pos, "safetensors: ", file, ": tensor data overlaps or leaves a gap at byte ", pos);
    pos = e;
  }
  ADNN_CHECK(pos == data_len, "safetensors: ", file, ": ", data_len - pos, " trailing bytes after the tensor data");
  return st;
}

std::vector<uint8_t> read_file(const std::string& path, uint64_t max_bytes) {
  // stat the opened descriptor (not the path), so what is checked is what is read
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ADNN_CHECK(fd >= 0, "cannot open ", path, ": ", std::strerror(errno));
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) {
    const int e = errno;
    ::close(fd);
    ADNN_FAIL("cannot stat ", path, ": ", std::strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    ::close(fd);
    ADNN_FAIL(path, S_ISDIR(sb.st_mode) ? " is a directory" : " is not a regular file (a device, pipe or socket)",
              ", expected a file");
  }
  const uint64_t size = uint64_t(sb.st_size);
  if (size > max_bytes) {
    ::close(fd);
    ADNN_FAIL(path, " has ", size, " bytes, more than the limit of ", max_bytes);
  }
  std::vector<uint8_t> out(size_t(size), 0);
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t r = ::read(fd, out.data() + done, out.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      const int e = errno;
      ::close(fd);
      ADNN_FAIL("reading ", path, " failed after ", done, " of ", size, " bytes",
                r < 0 ? std::string(": ") + std::strerror(e) : std::string(" (file shrank while read)"));
    }
    done += size_t(r);
  }
  ::close(fd);
  return out;
}

SafeTensors load_safetensors(const std::string& path) { return parse_safetensors(read_file(path), path); }

std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  std::string h = "{";
  bool first = true;
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    for (auto it = metadata.begin(); it != metadata.end(); ++it) {
      if (it != metadata.begin()) h += ',';
      json_string(h, it->first);
      h += ':';
      json_string(h, it->second);
    }
    h += '}';
    first = false;
  }
  uint64_t off = 0;
  std::vector<Tensor> host;
  for (auto& [name, t0] : tensors) {
    ADNN_CHECK(name != "__metadata__", "save_safetensors: '__metadata__' is reserved");
    Tensor t = t0.detach().to(kCPU).contiguous();
    host.push_back(t);
    const uint64_t n = uint64_t(t.numel()) * t.element_size();
    if (!first) h += ',';
    first = false;
    json_string(h, name);
    h += ":{\"dtype\":\"";
    h += st_name(t.dtype());
    h += "\",\"shape\":[";
    for (int64_t d = 0; d < t.dim(); ++d) h += (d ? "," : "") + std::to_string(t.size(d));
    h += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + n) + "]}";
    off += n;
  }
  h += '}';
  while ((8 + h.size()) % 8) h += ' ';  // align the data to 8 bytes, as the reference writer
  std::vector<uint8_t> out(8 + h.size() + off);
  uint64_t hl = h.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = uint8_t(hl >> (8 * i));
  std::memcpy(out.data() + 8, h.data(), h.size());
  uint64_t pos = 8 + h.size();
  for (auto& t : host) {
    const size_t n = size_t(t.numel()) * t.element_size();
    if (n) std::memcpy(out.data() + pos, t.data_ptr(), n);
    pos += n;
  }
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string tmp = (dir / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()))).string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ADNN_CHECK(fd >= 0, "write_file_atomic: cannot create ", tmp, ": ", std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      ADNN_FAIL("write_file_atomic: writing ", tmp, " failed: ", std::strerror(e));
    }
    done += size_t(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    ADNN_FAIL("write_file_atomic: flushing ", tmp, " failed: ", std::strerror(e));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    ADNN_FAIL("write_file_atomic: renaming ", tmp, " to ", path, " failed: ", std::strerror(e));
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace adnn::io
