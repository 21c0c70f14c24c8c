// Hostile inputs (issue 22): the checked number parser, images that are truncated, corrupt,
// too large or not files, FER2013 CSV rows that must not be dropped or misread, safetensors
// shapes that overflow, mislabelled dtypes, non-regular files, and checkpoint metadata that
// is not a number. Each case failed (crash, hang, silent acceptance or wrong message) before
// its fix.
#include <adnn/config.hpp>

#include <stb_image_write.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::data;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("adnn_inputs_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

using Bytes = std::vector<uint8_t>;

void write_bytes(const fs::path& p, const Bytes& b) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}
void write_text(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

void append(std::vector<uint8_t>* out, const void* data, int size) {
  auto p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}
void to_vec(void* ctx, void* data, int size) { append(static_cast<Bytes*>(ctx), data, size); }

std::vector<uint8_t> pattern(int h, int w, int c) {
  std::vector<uint8_t> px(size_t(h) * w * c);
  for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t((i * 37 + i / 7) % 256);
  return px;
}
Bytes encode(const char* fmt, int h, int w, int c) {
  Bytes out;
  auto px = pattern(h, w, c);
  if (!std::strcmp(fmt, "png")) stbi_write_png_to_func(to_vec, &out, w, h, c, px.data(), w * c);
  if (!std::strcmp(fmt, "jpg")) stbi_write_jpg_to_func(to_vec, &out, w, h, c, px.data(), 90);
  if (!std::strcmp(fmt, "bmp")) stbi_write_bmp_to_func(to_vec, &out, w, h, c, px.data());
  REQUIRE(!out.empty());
  return out;
}

void put_be32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
}
// A PNG chunk with a correct CRC.
void chunk(Bytes& png, const char* type, const Bytes& data) {
  put_be32(png, uint32_t(data.size()));
  const size_t start = png.size();
  png.insert(png.end(), type, type + 4);
  png.insert(png.end(), data.begin(), data.end());
  put_be32(png, png_crc32(png.data() + start, png.size() - start));
}
// A structurally valid PNG that declares w x h (colour type 0 gray or 2 RGB) and carries a
// tiny (empty) zlib stream: decoding it would allocate the declared size.
Bytes png_header_only(uint32_t w, uint32_t h, uint8_t colour_type) {
  Bytes png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  Bytes ihdr;
  put_be32(ihdr, w);
  put_be32(ihdr, h);
  ihdr.insert(ihdr.end(), {8, colour_type, 0, 0, 0});
  chunk(png, "IHDR", ihdr);
  chunk(png, "IDAT", {0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01});
  chunk(png, "IEND", {});
  return png;
}

Image decode(const Bytes& b, const std::string& name) { return decode_image(b.data(), b.size(), name); }

std::string fer_pixels(int n = 2304) {
  std::string px;
  for (int i = 0; i < n; ++i) px += (i ? " " : "") + std::to_string(i % 256);
  return px;
}

}  // namespace

TEST_SUITE("errors") {
  TEST_CASE("json object: what write_json_object writes reads back; anything else names the byte") {
    const std::map<std::string, std::string> m{{"a", "1"}, {"quote\"back\\slash", "tab\tnl\nctl\x01"}, {"", ""},
                                               {"utf8 \xc3\xa9", "\xe2\x82\xac"}};
    CHECK(io::parse_json_object(io::write_json_object(m), "t") == m);
    CHECK(io::parse_json_object(" {\n} ", "t").empty());
    CHECK(io::parse_json_object(R"({"k": "a\/b\u0041"})", "t").at("k") == "a/bA");
    for (const char* bad : {"", "{", "[]", R"({"k": 1})", R"({"k": "v",})", R"({"k": "v"} x)", R"({"k": "v", "k": "w"})",
                            R"({"k": {"n": "v"}})", "{\"k\": \"v\n\"}", R"({"k": "\u00e9"})", R"({"k": "\q"})",
                            R"({"k": "v")", R"({"k" "v"})"}) {
      CAPTURE(bad);
      CHECK_THROWS_WITH_AS(io::parse_json_object(bad, "cfg.json"), doctest::Contains("cfg.json: not a flat JSON object"),
                           Error);
    }
    CHECK_THROWS_WITH_AS(io::parse_json_object(R"({"k": "v"} x)", "f"), doctest::Contains("trailing characters at byte 11"),
                         Error);
  }

  TEST_CASE("read_json_object: a file's object; errors name the file (bad text, a directory, over 16 MiB)") {
    const fs::path dir = temp_dir("read_json");
    const std::string good = (dir / "good.json").string(), bad = (dir / "bad.json").string(),
                      big = (dir / "big.json").string(), absent = (dir / "absent.json").string();
    const std::map<std::string, std::string> m{{"a", "1"}, {"b", "two"}};
    std::ofstream(good) << io::write_json_object(m);
    CHECK(io::read_json_object(good) == m);
    std::ofstream(bad) << R"({"a": "1")";
    std::ofstream(big).close();
    fs::resize_file(big, (uint64_t(16) << 20) + 1);  // 16 MiB + 1 byte, sparse: refused before it is read
    for (const auto& [path, what] :
         std::vector<std::pair<std::string, std::string>>{{bad, bad + ": not a flat JSON object"},
                                                          {dir.string(), dir.string() + " is a directory"},
                                                          {absent, "cannot open " + absent},
                                                          {big, big + " has 16777217 bytes, more than the limit"}}) {
      CAPTURE(path);
      CHECK_THROWS_WITH_AS(io::read_json_object(path), doctest::Contains(what.c_str()), Error);
    }
    fs::remove_all(dir);
  }

  TEST_CASE("parse_int64/parse_uint64/parse_double: whole text, range, finiteness, the key in the message") {
    CHECK(parse_int64("42", "k") == 42);
    CHECK(parse_int64("-7", "k") == -7);
    CHECK(parse_int64("+5", "k") == 5);
    CHECK(parse_int64("9223372036854775807", "k") == std::numeric_limits<int64_t>::max());
    for (const char* bad : {"48abc", "1e3", "", " 1", "1 ", "abc", "1.0", "0x10", "--1", "+-1", "++1", "+"})
      CHECK_THROWS_WITH_AS(parse_int64(bad, "model.image_size"),
                           doctest::Contains("model.image_size: expected an integer, got '"), Error);
    CHECK_THROWS_WITH_AS(parse_int64("99999999999999999999", "--epochs"), doctest::Contains("--epochs: '99999999999999999999' is out of range"),
                         Error);
    CHECK_THROWS_WITH_AS(parse_int64("100000", "model.image_size", 1, 4096),
                         doctest::Contains("model.image_size: 100000 is out of range [1, 4096]"), Error);
    CHECK_THROWS_WITH_AS(parse_int64("-5", "--train-limit", 0), doctest::Contains("--train-limit: -5 is out of range"),
                         Error);
    // the shown text is bounded and escaped
    CHECK_THROWS_WITH_AS(parse_int64(std::string(100, 'x') + "\n", "k"),
                         doctest::Contains("got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'..."), Error);
    CHECK_THROWS_WITH_AS(parse_int64("1\x01", "k"), doctest::Contains("got '1\\x01'"), Error);

    CHECK(parse_uint64("18446744073709551615", "rng.0") == std::numeric_limits<uint64_t>::max());
    CHECK_THROWS_WITH_AS(parse_uint64("-1", "rng.0"), doctest::Contains("rng.0: expected a non-negative integer"), Error);
    CHECK_THROWS_WITH_AS(parse_uint64("18446744073709551616", "rng.0"), doctest::Contains("out of range"), Error);
    CHECK_THROWS_WITH_AS(parse_uint64("11", "k", 10), doctest::Contains("k: 11 is out of range [0, 10]"), Error);

    CHECK(parse_double("0.1", "lr") == 0.1);
    CHECK(parse_double("1e-3", "lr") == 1e-3);
    CHECK(parse_double("-2.5", "x") == -2.5);
    CHECK(parse_double("1e3", "x") == 1000.0);
    CHECK(parse_double("+3", "x") == 3.0);
    for (const char* bad : {"x", "", "1.5abc", " 1", "1 ", "0x10", "1e", "--1"})
      CHECK_THROWS_WITH_AS(parse_double(bad, "recipe.lr"), doctest::Contains("recipe.lr: expected a number"), Error);
    for (const char* nf : {"inf", "-inf", "nan", "NaN", "infinity"}) {
      CHECK_THROWS_WITH_AS(parse_double(nf, "--lr"), doctest::Contains("--lr: '"), Error);
      CHECK_THROWS_WITH_AS(parse_double(nf, "--lr"), doctest::Contains("is not a finite number"), Error);
      CHECK(!std::isfinite(parse_double(nf, "best", NonFinite::allow)));
    }
    CHECK_THROWS_WITH_AS(parse_double("1e999", "--lr"), doctest::Contains("--lr: '1e999' is out of the range of a double"),
                         Error);
    CHECK_THROWS_WITH_AS(parse_double("0", "--lr", NonFinite::refuse, 1e-12, 10),
                         doctest::Contains("--lr: 0 is out of range"), Error);
    CHECK(parse_double("10", "--lr", NonFinite::refuse, 1e-12, 10) == 10.0);
  }

  TEST_CASE("a device index that overflows int is an adnn::Error") {
    CHECK_THROWS_WITH_AS(Device::parse("cuda:99999999999"), doctest::Contains("out of range"), Error);
    CHECK_THROWS_AS(Device::parse("cuda:1x"), Error);
  }
}

TEST_SUITE("data") {
  TEST_CASE("images: truncated JPEG, PNG and BMP files are errors, not gray or black pictures") {
    const Bytes jpg = encode("jpg", 24, 32, 3), png = encode("png", 24, 32, 3), bmp = encode("bmp", 24, 32, 3);
    CHECK(decode(jpg, "a.jpg").width == 32);
    CHECK(decode(png, "a.png").height == 24);
    CHECK(decode(bmp, "a.bmp").channels == 3);
    // JPEG: cut anywhere after the first scan header (stb fills the rest with gray)
    for (size_t keep : {jpg.size() - 2, jpg.size() * 3 / 4, jpg.size() / 2}) {
      CAPTURE(keep);
      CHECK_THROWS_WITH_AS(decode(Bytes(jpg.begin(), jpg.begin() + long(keep)), "cut.jpg"),
                           doctest::Contains("cut.jpg is a truncated JPEG"), Error);
    }
    CHECK_THROWS_WITH_AS(decode(Bytes(jpg.begin(), jpg.begin() + 30), "head.jpg"),
                         doctest::Contains("head.jpg is a truncated JPEG"), Error);
    // PNG: without IEND (stb stops after the image data), or cut inside a chunk
    CHECK_THROWS_WITH_AS(decode(Bytes(png.begin(), png.end() - 12), "noend.png"),
                         doctest::Contains("noend.png is a truncated PNG"), Error);
    CHECK_THROWS_WITH_AS(decode(Bytes(png.begin(), png.end() - 30), "cut.png"),
                         doctest::Contains("cut.png is a truncated PNG"), Error);
    // BMP cut to its 54-byte header, or missing the last row
    CHECK_THROWS_WITH_AS(decode(Bytes(bmp.begin(), bmp.begin() + 54), "head.bmp"),
                         doctest::Contains("head.bmp is a truncated BMP"), Error);
    CHECK_THROWS_WITH_AS(decode(Bytes(bmp.begin(), bmp.end() - 96), "short.bmp"),
                         doctest::Contains("short.bmp is a truncated BMP"), Error);
    CHECK_THROWS_WITH_AS(decode(Bytes(bmp.begin(), bmp.begin() + 20), "tiny.bmp"),
                         doctest::Contains("tiny.bmp is a truncated BMP"), Error);
    // other formats stb would guess at (TGA has no signature: any bytes could be one)
    CHECK_THROWS_WITH_AS(decode(Bytes{0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 24, 0, 1, 2, 3}, "x.tga"),
                         doctest::Contains("x.tga is not a readable image (not a JPEG, PNG or BMP file)"), Error);
  }

  TEST_CASE("images: a JPEG with a corrupt Huffman code is an error, not an abort (found by fuzz_image)") {
    // Debian's libstb asserts in stbi__jpeg_huff_decode on this file (SIGABRT); JPEGs are
    // decoded by libjpeg-turbo, whose errors come back as an adnn::Error
    std::ifstream f(std::string(ADNN_SOURCE_DIR) + "/tests/fuzz/corpus/image/stb_huffman_assert", std::ios::binary);
    REQUIRE(f);
    Bytes b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    b.erase(b.begin());  // the harness's first byte chooses the channels
    CHECK_THROWS_WITH_AS(decode(b, "huff.jpg"), doctest::Contains("read_image: cannot decode huff.jpg ("), Error);
    // every single-byte change of a valid JPEG decodes or is an adnn::Error (never an abort)
    const Bytes jpg = encode("jpg", 16, 16, 1);
    size_t refused = 0;
    for (size_t i = 2; i < jpg.size(); ++i)
      for (uint8_t x : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xFF)}) {
        Bytes m = jpg;
        m[i] ^= x;
        try {
          const Image img = decode(m, "flip.jpg");
          CHECK(img.width * img.height > 0);
        } catch (const Error&) {
          ++refused;
        }
      }
    CHECK(refused > 0);
  }

  TEST_CASE("images: every byte flipped inside a PNG chunk is caught by its CRC") {
    const Bytes png = encode("png", 16, 16, 1);
    int flips = 0;
    for (size_t i = 8; i < png.size(); ++i) {  // all chunk bytes: lengths, types, data, CRCs
      Bytes b = png;
      b[i] ^= 0x10;
      CAPTURE(i);
      CHECK_THROWS_AS(decode(b, "flip.png"), Error);
      // a flipped length reads as truncation (or a CRC over the wrong bytes); anything else
      // is a CRC mismatch
      const bool length_byte = i < 12 || (i >= 33 && i < 37) || i >= png.size() - 12;
      if (!length_byte) {
        CHECK_THROWS_WITH_AS(decode(b, "flip.png"), doctest::Contains("flip.png is a corrupt PNG (CRC mismatch"), Error);
        ++flips;
      }
    }
    CHECK(flips > 40);
  }

  TEST_CASE("images: size limits are checked before allocating") {
    // 16384 x 16384 declared in a 60-byte file: refused at once, nothing allocated
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH_AS(decode(png_header_only(16384, 16384, 0), "huge.png"),
                         doctest::Contains("huge.png is 16384x16384, larger than the limit of 8192 pixels a side"),
                         Error);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
    // within the side limit but over the decoded-bytes limit: 8192 x 8192 RGB floats = 768 MiB
    CHECK_THROWS_WITH_AS(decode(png_header_only(8192, 8192, 2), "big.png"),
                         doctest::Contains("bytes decoded, more than the limit of 268435456"), Error);
    // a real (decodable) image one pixel over the side limit
    CHECK_THROWS_WITH_AS(decode(encode("png", 1, kMaxImageSide + 1, 1), "wide.png"),
                         doctest::Contains("wide.png is 8193x1, larger than the limit"), Error);
    CHECK(decode(encode("png", 1, kMaxImageSide, 1), "ok.png").width == kMaxImageSide);
  }

  TEST_CASE("images: a directory or a device is not an image") {
    fs::path d = temp_dir("img");
    fs::create_directories(d / "face.jpg");
    CHECK_THROWS_WITH_AS(read_image((d / "face.jpg").string()), doctest::Contains("face.jpg is a directory"), Error);
    CHECK_THROWS_WITH_AS(read_image("/dev/zero"), doctest::Contains("/dev/zero is not a regular file"), Error);
    write_bytes(d / "ok.png", encode("png", 4, 4, 1));
    CHECK(read_image((d / "ok.png").string()).width == 4);
    fs::remove_all(d);
  }

  TEST_CASE("FER2013 CSV: damaged rows are errors naming file and line, never dropped or misread") {
    fs::path d = temp_dir("csv");
    const std::string px = fer_pixels(), head = "emotion,pixels,Usage\n";
    auto load = [&](const std::string& body, const std::string& usage = "Training") {
      write_text(d / "f.csv", head + body);
      return Fer2013Csv((d / "f.csv").string(), usage);
    };
    CHECK(load("3," + px + ",Training\r\n5," + px + ",PublicTest\n").size() == 1);
    CHECK_THROWS_WITH_AS(load("3," + px + " abc,Training\n"),
                         doctest::Contains("f.csv:2: pixel 2305: expected an integer, got 'abc'"), Error);
    CHECK_THROWS_WITH_AS(load("3," + px + " 7,Training\n"), doctest::Contains("f.csv:2: 2305 pixels, expected 2304"),
                         Error);
    CHECK_THROWS_WITH_AS(load("3abc," + px + ",Training\n"),
                         doctest::Contains("f.csv:2: emotion: expected an integer, got '3abc'"), Error);
    CHECK_THROWS_WITH_AS(load("7," + px + ",Training\n"), doctest::Contains("f.csv:2: emotion: 7 is out of range [0, 6]"),
                         Error);
    // 2 of 3 rows were dropped silently before: an extra column, a usage with a space
    CHECK_THROWS_WITH_AS(load("3," + px + ",Training\n4," + px + ",Training,x\n5," + px + ",Training \n"),
                         doctest::Contains("f.csv:3: 4 columns, expected 3"), Error);
    CHECK_THROWS_WITH_AS(load("3," + px + ",Training\n5," + px + ",Training \n"),
                         doctest::Contains("f.csv:3: Usage 'Training ' is not one of Training, PublicTest, PrivateTest"),
                         Error);
    // rows of another usage are checked too
    CHECK_THROWS_WITH_AS(load("3," + px + ",Training\n2," + px + " 1,PublicTest\n"),
                         doctest::Contains("f.csv:3: 2305 pixels"), Error);
    // a pixel that overflows int was reported as "0 pixels"
    CHECK_THROWS_WITH_AS(load("3,99999999999 " + px.substr(2) + ",Training\n"),
                         doctest::Contains("f.csv:2: pixel 1: 99999999999 is out of range [0, 255]"), Error);
    CHECK_THROWS_WITH_AS(load("3,256 " + px.substr(2) + ",Training\n"),
                         doctest::Contains("f.csv:2: pixel 1: 256 is out of range [0, 255]"), Error);
    CHECK_THROWS_WITH_AS(load("3,-1 " + px.substr(2) + ",Training\n"),
                         doctest::Contains("f.csv:2: pixel 1: -1 is out of range [0, 255]"), Error);
    CHECK_THROWS_WITH_AS(load("3,0  " + px.substr(2) + ",Training\n"),
                         doctest::Contains("f.csv:2: pixel 2: expected an integer, got ''"), Error);
    CHECK_THROWS_WITH_AS(load("3," + px + ",Training\n", "Train"), doctest::Contains("usage 'Train' is not one of"),
                         Error);
    write_text(d / "h.csv", "emotion,pixels,Usage,extra\n3," + px + ",Training,1\n");
    CHECK_THROWS_WITH_AS(Fer2013Csv((d / "h.csv").string(), ""), doctest::Contains("expected the header"), Error);
    write_text(d / "n.csv", "emotion,pixels\n3," + px + "\n");
    CHECK(Fer2013Csv((d / "n.csv").string(), "").size() == 1);
    CHECK_THROWS_WITH_AS(Fer2013Csv((d / "n.csv").string(), "Training"), doctest::Contains("has no Usage column"), Error);
    fs::create_directories(d / "dir.csv");
    CHECK_THROWS_WITH_AS(Fer2013Csv((d / "dir.csv").string(), ""), doctest::Contains("cannot open"), Error);
    fs::remove_all(d);
  }
}

TEST_SUITE("train") {
  TEST_CASE("safetensors: overflowing shapes, mislabelled dtypes, devices and directories") {
    auto header = [](const std::string& h, size_t data) {
      Bytes b(8 + h.size() + data, 0);
      uint64_t n = h.size();
      for (int i = 0; i < 8; ++i) b[size_t(i)] = uint8_t(n >> (8 * i));
      std::memcpy(b.data() + 8, h.data(), h.size());
      return b;
    };
    // 2^32 * 2^32 wrapped to 0 elements, which matched empty data_offsets
    CHECK_THROWS_WITH_AS(
        io::parse_safetensors(header(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0),
                              "wrap.safetensors"),
        doctest::Contains("wrap.safetensors: tensor 'a' of shape"), Error);
    CHECK_THROWS_WITH_AS(
        io::parse_safetensors(
            header(R"({"a":{"dtype":"U8","shape":[65536,65536,65536,65536],"data_offsets":[0,0]}})", 0), "w2"),
        doctest::Contains("elements"), Error);
    // a zero dimension makes an empty tensor, but the other dimensions still count (their
    // product is a stride)
    CHECK_THROWS_WITH_AS(
        io::parse_safetensors(
            header(R"({"a":{"dtype":"F32","shape":[0,1099511627775,1099511627775],"data_offsets":[0,0]}})", 0), "z"),
        doctest::Contains("elements"), Error);
    auto ok = io::parse_safetensors(header(R"({"a":{"dtype":"F32","shape":[5,0,7],"data_offsets":[0,0]}})", 0), "z");
    CHECK(ok.tensors.at(0).second.numel() == 0);
    // the byte length must be numel times the declared dtype's size
    CHECK_THROWS_WITH_AS(
        io::parse_safetensors(header(R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", 8), "len"),
        doctest::Contains("has 8 bytes but F64[2] needs 16"), Error);

    fs::path d = temp_dir("st");
    // an I32 tensor (F32 bytes under the wrong label) must not become garbage weights
    nn::Linear lin(2, 3);
    auto sd = lin.state_dict();
    std::vector<std::pair<std::string, Tensor>> mislabelled;
    for (auto& [n, t] : sd) mislabelled.push_back({n, n == "weight" ? zeros(t.sizes(), DType::i32) : t});
    io::save_safetensors((d / "m.safetensors").string(), mislabelled);
    auto st = io::load_safetensors((d / "m.safetensors").string());
    CHECK_THROWS_WITH_AS(lin.load_state_dict(st.tensors),
                         doctest::Contains("load_state_dict: 'weight' is i32 in the state dict but f32 in the module"),
                         Error);
    std::vector<std::pair<std::string, Tensor>> halves;
    for (auto& [n, t] : sd) halves.push_back({n, t.to(DType::f16)});
    lin.load_state_dict(halves);  // floating conversions stay allowed

    // not regular files: refused before reading (reading /dev/zero never ended)
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH_AS(io::load_safetensors("/dev/zero"), doctest::Contains("/dev/zero is not a regular file"), Error);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
    CHECK_THROWS_WITH_AS(io::load_safetensors(d.string()), doctest::Contains("is a directory"), Error);
    CHECK_THROWS_WITH_AS(io::read_file((d / "m.safetensors").string(), 10), doctest::Contains("more than the limit of 10"),
                         Error);
    fs::remove_all(d);
  }

  TEST_CASE("checkpoints: metadata that is not a number is an adnn::Error naming the key") {
    fs::path d = temp_dir("ck");
    const std::string w = (d / "c.safetensors").string(), sp = io::state_path(w);
    nn::Linear lin(2, 2);
    optim::SGD opt(lin.parameters(), {});
    io::TrainState s;
    s.step = 12;
    s.epoch = 3;
    io::save_checkpoint(w, lin, opt, s);
    CHECK(io::load_checkpoint(w, lin, opt).step == 12);
    const auto good = io::load_safetensors(sp);
    auto with = [&](const std::string& key, const std::string& value) {
      auto meta = good.metadata;
      meta[key] = value;
      io::save_safetensors(sp, good.tensors, meta);
    };
    const std::pair<const char*, const char*> cases[] = {
        {"train.step", "12abc"},         {"train.step", "abc"},      {"train.step", "-1"},
        {"train.epoch", "1e3"},          {"train.bad_epochs", ""},   {"optimizer.lr", "x"},
        {"optimizer.lr", "inf"},         {"optimizer.lr", "-0.1"},   {"rng.2", "-1"},
        {"rng.0", "99999999999999999999"}, {"optimizer.steps", "5x"}, {"optimizer.steps", "99999999999999999999"}};
    for (auto [key, value] : cases) {
      CAPTURE(key);
      CAPTURE(value);
      with(key, value);
      const std::string quoted = std::string("'") + key + "'";
      CHECK_THROWS_WITH_AS(io::load_checkpoint(w, lin, opt), doctest::Contains(quoted.c_str()), Error);
    }
    with("train.best_metric", "nan");  // NaN until a first evaluation
    CHECK(std::isnan(io::load_checkpoint(w, lin, opt).best_metric));
    fs::remove_all(d);
  }
}
