#pragma once
// Flat JSON objects of strings: {"key": "value", ...}. The run directory's config.json and
// any key → value record adnn writes (checkpoint metadata uses the same map type). The
// reader accepts exactly what the writer can produce (plus insignificant white space and the
// escapes \" \\ \/ \n \t \uXXXX below 0x80); anything else — truncated text, numbers,
// nested values, a duplicate key, control characters, trailing characters — is an
// adnn::Error naming `what` (a file) and the byte offset. parse(write(m)) == m for any m.
#include <map>
#include <string>
#include <string_view>

namespace adnn::io {

std::string write_json_object(const std::map<std::string, std::string>& m);
std::map<std::string, std::string> parse_json_object(std::string_view text, const std::string& what);
// The whole regular file at `path` (io::read_file: a directory, device or pipe is refused
// before anything is read), at most 16 MiB, parsed as above; every error names `path`.
std::map<std::string, std::string> read_json_object(const std::string& path);

}  // namespace adnn::io
