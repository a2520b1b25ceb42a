#include "http_api.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

#include "../common/memory_info_json.h"
#include "linattn/core/error.h"

namespace linattn::serve {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& message) { throw ServiceError(Code::invalid_argument, message); }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The media type without parameters: "application/json; charset=utf-8" -> "application/json".
std::string media_type(std::string_view content_type) {
  const std::string t = lower(content_type.substr(0, content_type.find(';')));
  const size_t a = t.find_first_not_of(" \t"), b = t.find_last_not_of(" \t");
  return a == std::string::npos ? "" : t.substr(a, b + 1 - a);
}

enum class Body { json_text, npy_array };

Body body_kind(std::string_view content_type) {
  const std::string t = media_type(content_type);
  // curl -d sends application/x-www-form-urlencoded unless told otherwise: read as JSON.
  if (t.empty() || t == "application/json" || t == "application/x-www-form-urlencoded") return Body::json_text;
  if (t == "application/x-npy" || t == "application/octet-stream") return Body::npy_array;
  throw ServiceError(Code::unsupported_media, "unsupported Content-Type '" + t +
                                                  "': send application/json or application/x-npy");
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view q) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!q.empty()) {
    const size_t amp = q.find('&');
    const std::string_view part = q.substr(0, amp);
    if (!part.empty()) {
      const size_t eq = part.find('=');
      out.emplace_back(percent_decode(part.substr(0, eq), true),
                       eq == std::string_view::npos ? "" : percent_decode(part.substr(eq + 1), true));
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

bool parse_bool(const std::string& name, const std::string& v) {
  if (v == "true" || v == "1" || v.empty()) return true;
  if (v == "false" || v == "0") return false;
  bad("query parameter '" + name + "' must be true or false, not '" + v + "'");
}

double parse_number(const std::string& name, const std::string& v) {
  double d = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
  if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(d))
    bad("query parameter '" + name + "' must be a finite number, not '" + v + "'");
  return d;
}

int64_t parse_int(const std::string& name, const std::string& v) {
  int64_t i = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), i);
  if (ec != std::errc() || end != v.data() + v.size()) bad("query parameter '" + name + "' must be an integer, not '" + v + "'");
  return i;
}

float to_float(double d, const std::string& what) {
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
    bad(what + " has a value outside float32's range");
  return static_cast<float>(d);
}

// A list of rows of numbers, all of one length. `flat_ok`: a list of numbers is one column.
npy::Matrix matrix_of(const json& j, const std::string& what, bool flat_ok = false) {
  if (!j.is_array()) bad(what + " must be a list of rows (lists of numbers)");
  npy::Matrix m;
  m.rows = static_cast<int64_t>(j.size());
  if (m.rows == 0) return m;
  if (flat_ok && j.front().is_number()) {
    m.cols = 1;
    m.data.reserve(j.size());
    for (const json& x : j) {
      if (!x.is_number()) bad(what + " must be a list of numbers");
      m.data.push_back(to_float(x.get<double>(), what));
    }
    return m;
  }
  if (!j.front().is_array()) bad(what + " must be a list of rows (lists of numbers), e.g. [[0.1, 0.2]]");
  m.cols = static_cast<int64_t>(j.front().size());
  m.data.reserve(static_cast<size_t>(m.rows * m.cols));
  for (size_t r = 0; r < j.size(); ++r) {
    const json& row = j[r];
    if (!row.is_array() || static_cast<int64_t>(row.size()) != m.cols)
      bad(what + ": row " + std::to_string(r) + " has " + (row.is_array() ? std::to_string(row.size()) : "no") +
          " numbers, row 0 has " + std::to_string(m.cols));
    for (const json& x : row) {
      if (!x.is_number()) bad(what + ": row " + std::to_string(r) + " holds something that is not a number");
      m.data.push_back(to_float(x.get<double>(), what));
    }
  }
  return m;
}

json parse_json(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) bad("the body is not valid JSON");
  if (!j.is_object()) bad("the body must be a JSON object");
  return j;
}

void refuse_unknown(const json& j, std::initializer_list<const char*> known) {
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::none_of(known.begin(), known.end(), [&](const char* k) { return it.key() == k; })) {
      std::string list;
      for (const char* k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      bad("unknown field '" + it.key() + "' (fields: " + list + ")");
    }
}

bool json_bool(const json& j, const char* key, bool fallback) {
  if (!j.contains(key)) return fallback;
  if (!j[key].is_boolean()) bad(std::string("'") + key + "' must be true or false");
  return j[key].get<bool>();
}

float json_scale(const json& j) {
  if (!j.contains("scale")) return 1.f;
  if (!j["scale"].is_number()) bad("'scale' must be a number");
  return to_float(j["scale"].get<double>(), "'scale'");
}

npy::Matrix npy_of(std::string_view body, const std::string& what) {
  try {
    return npy::parse(std::as_bytes(std::span<const char>(body.data(), body.size())), what);
  } catch (const FormatError& e) {
    bad(e.what());
  }
}

}  // namespace

std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(s[i + 2])))
        bad("a malformed %-escape in the request's target");
      c = static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') bad("a NUL character in the request's target");
    out.push_back(c);
  }
  return out;
}

LookupCall decode_lookup(std::string_view content_type, std::string_view query, std::string_view body) {
  LookupCall call;
  if (body_kind(content_type) == Body::npy_array) {
    call.queries = npy_of(body, "the request body (.npy queries)");
  } else {
    const json j = parse_json(body);
    refuse_unknown(j, {"queries", "mean", "scale"});
    if (!j.contains("queries")) bad("the body needs 'queries': a list of rows");
    call.queries = matrix_of(j["queries"], "'queries'");
    call.mean = json_bool(j, "mean", false);
    call.scale = json_scale(j);
  }
  for (const auto& [k, v] : parse_query(query)) {
    if (k == "mean") call.mean = parse_bool(k, v);
    else if (k == "scale") call.scale = to_float(parse_number(k, v), "'scale'");
    else bad("unknown query parameter '" + k + "' (mean, scale)");
  }
  return call;
}

SearchCall decode_search(std::string_view content_type, std::string_view query, std::string_view body) {
  SearchCall call;
  auto score_of = [](const std::string& s) {
    const auto score = parse_search_score(s);
    if (!score) bad("unknown score '" + s + "' (quadratic, norm)");
    return *score;
  };
  if (body_kind(content_type) == Body::npy_array) {
    call.queries = npy_of(body, "the request body (.npy queries)");
  } else {
    const json j = parse_json(body);
    refuse_unknown(j, {"queries", "k", "names", "score", "mean", "scale"});
    if (!j.contains("queries")) bad("the body needs 'queries': a list of rows");
    call.queries = matrix_of(j["queries"], "'queries'");
    if (j.contains("k")) {
      if (!j["k"].is_number_integer()) bad("'k' must be an integer");
      call.k = j["k"].get<int64_t>();
    }
    if (j.contains("names")) {
      if (!j["names"].is_array()) bad("'names' must be a list of memory names");
      for (const json& n : j["names"]) {
        if (!n.is_string()) bad("'names' must be a list of memory names");
        call.names.push_back(n.get<std::string>());
      }
    }
    if (j.contains("score")) {
      if (!j["score"].is_string()) bad("'score' must be \"quadratic\" or \"norm\"");
      call.score = score_of(j["score"].get<std::string>());
    }
    call.mean = json_bool(j, "mean", false);
    call.scale = json_scale(j);
  }
  for (const auto& [k, v] : parse_query(query)) {
    if (k == "k") call.k = parse_int(k, v);
    else if (k == "name") call.names.push_back(v);
    else if (k == "score") call.score = score_of(v);
    else if (k == "mean") call.mean = parse_bool(k, v);
    else if (k == "scale") call.scale = to_float(parse_number(k, v), "'scale'");
    else bad("unknown query parameter '" + k + "' (k, name, score, mean, scale)");
  }
  return call;
}

PutCall decode_put(std::string_view content_type, std::string_view query, std::string_view body) {
  PutCall call;
  std::vector<std::string> parts;
  const auto params = parse_query(query);
  for (const auto& [k, v] : params) {
    if (k == "dtype") call.dtype = v;
    else if (k == "symmetric") call.symmetric = parse_bool(k, v);
    else if (k == "feature_map") call.feature_map = v;
    else if (k == "normalize") call.normalize = parse_bool(k, v);
    else if (k == "parts") {
      for (size_t a = 0; a <= v.size();) {
        const size_t b = std::min(v.find(',', a), v.size());
        parts.push_back(v.substr(a, b - a));
        a = b + 1;
      }
    } else {
      bad("unknown query parameter '" + k + "' (dtype, symmetric, feature_map, normalize, parts)");
    }
  }
  if (body_kind(content_type) == Body::npy_array) {
    // One to three arrays, concatenated: keys, then values and gates, or as `parts` names them.
    auto bytes = std::as_bytes(std::span<const char>(body.data(), body.size()));
    std::vector<npy::Matrix> arrays;
    try {
      while (!bytes.empty() && arrays.size() < 3) arrays.push_back(npy::parse_next(bytes, "the request body (.npy array " + std::to_string(arrays.size()) + ")"));
    } catch (const FormatError& e) {
      bad(e.what());
    }
    if (!bytes.empty()) bad("the request body holds more than three .npy arrays");
    if (arrays.empty()) bad("the body needs the keys: one .npy array");
    if (parts.empty()) {
      static const char* const kOrder[] = {"keys", "values", "gates"};
      for (size_t i = 0; i < arrays.size(); ++i) parts.push_back(kOrder[i]);
    }
    if (parts.size() != arrays.size())
      bad("'parts' names " + std::to_string(parts.size()) + " arrays; the body holds " + std::to_string(arrays.size()));
    bool have_keys = false;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (parts[i] == "keys" && !have_keys) { call.keys = std::move(arrays[i]); have_keys = true; }
      else if (parts[i] == "values" && !call.values) call.values = std::move(arrays[i]);
      else if (parts[i] == "gates" && !call.gates) call.gates = std::move(arrays[i]);
      else bad("'parts' must name keys, values and gates at most once each, not '" + parts[i] + "'");
    }
    if (!have_keys) bad("'parts' must include keys");
    return call;
  }
  if (!parts.empty()) bad("'parts' applies to .npy bodies only");
  const json j = parse_json(body);
  refuse_unknown(j, {"keys", "values", "gates", "dtype", "symmetric", "feature_map", "normalize"});
  if (!j.contains("keys")) bad("the body needs 'keys': a list of rows");
  call.keys = matrix_of(j["keys"], "'keys'");
  if (j.contains("values")) call.values = matrix_of(j["values"], "'values'");
  if (j.contains("gates")) call.gates = matrix_of(j["gates"], "'gates'", true);
  if (j.contains("dtype")) {
    if (!j["dtype"].is_string()) bad("'dtype' must be \"f32\" or \"bf16\"");
    call.dtype = j["dtype"].get<std::string>();
  }
  if (j.contains("symmetric")) call.symmetric = json_bool(j, "symmetric", false);
  if (j.contains("normalize")) call.normalize = json_bool(j, "normalize", false);
  if (j.contains("feature_map")) {
    if (!j["feature_map"].is_string()) bad("'feature_map' must be a string");
    call.feature_map = j["feature_map"].get<std::string>();
  }
  return call;
}

std::string results_json(const npy::Matrix& r) {
  std::string out = "{\"results\":[";
  out.reserve(out.size() + static_cast<size_t>(r.rows * (r.cols * 14 + 3)) + 4);
  char buf[32];
  for (int64_t i = 0; i < r.rows; ++i) {
    out += i ? ",[" : "[";
    for (int64_t c = 0; c < r.cols; ++c) {
      if (c) out += ',';
      const auto res = std::to_chars(buf, buf + sizeof buf, r.data[static_cast<size_t>(i * r.cols + c)]);
      out.append(buf, res.ptr);
    }
    out += ']';
  }
  out += "]}";
  return out;
}

namespace {

json describe_json(const MemoryDescription& d) {
  json j = apps::memory_info_json(d.info);
  j["name"] = d.name;
  j["bank"] = d.bank;
  return j;
}

// Names and messages can carry bytes that are not UTF-8 (a request's target is any bytes): they
// are written as U+FFFD rather than failing the answer.
std::string text_of(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpResponse json_response(int status, const json& j) { return {status, "application/json", text_of(j), {}}; }

}  // namespace

HttpResponse error_response(const Status& s) {
  HttpResponse r{http_status(s.code), "application/json", text_of(json{{"error", s.message}}), {}};
  if (s.code == Code::overloaded) r.headers.emplace_back("Retry-After", "1");
  if (s.code == Code::unauthenticated) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

void HttpApi::handle(HttpRequest req, std::function<void(HttpResponse)> respond) {
  const Clock::time_point start = Clock::now();
  const std::string_view target = req.target;
  const size_t qmark = target.find('?');
  const std::string_view path = target.substr(0, qmark);
  const std::string_view query = qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1);

  // Which route, and the memory name in it (percent-decoded; a raw '/' is not part of a name).
  Route route = Route::other;
  std::string name;
  std::vector<std::string> allowed;
  constexpr std::string_view kMemories = "/v1/memories/", kStates = "/v1/states/", kAttend = "/attend";
  // The name in a path segment; a raw '/' makes the path no route; false once answered (bad escape).
  auto name_of = [&](std::string_view segment) {
    if (segment.find('/') != std::string_view::npos) {
      allowed.clear();
      return true;
    }
    try {
      name = percent_decode(segment, false);
      return true;
    } catch (const ServiceError& e) {
      respond(error_response(e.status()));
      return false;
    }
  };
  if (path == "/v1/health") { route = Route::health; allowed = {"GET"}; }
  else if (path == "/metrics") { route = Route::metrics; allowed = {"GET"}; }
  else if (path == "/v1/memories") { route = Route::list; allowed = {"GET"}; }
  else if (path == "/v1/search") { route = Route::search; allowed = {"POST"}; }
  else if (path == "/v1/noop") { route = Route::other; allowed = {"GET", "POST"}; }
  else if (path.substr(0, kStates.size()) == kStates && path.size() > kStates.size() + kAttend.size() &&
           path.substr(path.size() - kAttend.size()) == kAttend) {
    route = Route::attend;
    allowed = {"POST"};
    if (!name_of(path.substr(kStates.size(), path.size() - kStates.size() - kAttend.size()))) return;
  } else if (path.substr(0, kMemories.size()) == kMemories && path.size() > kMemories.size()) {
    std::string_view rest = path.substr(kMemories.size());
    constexpr std::string_view kLookup = "/lookup";
    if (rest.size() > kLookup.size() && rest.substr(rest.size() - kLookup.size()) == kLookup) {
      rest.remove_suffix(kLookup.size());
      route = Route::lookup;
      allowed = {"POST"};
    } else {
      route = Route::info;  // GET; PUT adds the memory
      allowed = {"GET", "PUT"};
    }
    if (!name_of(rest)) return;
    if (route == Route::info && req.method == "PUT") route = Route::put;
  }

  auto finish = [this, route, start, respond = std::move(respond)](HttpResponse r) {
    service_.metrics().request(route, false, r.status, std::chrono::duration<double>(Clock::now() - start).count());
    respond(std::move(r));
  };
  try {
    if (allowed.empty()) throw ServiceError(Code::not_found, "no route " + std::string(path) + " (docs/serve.md lists them)");
    if (std::find(allowed.begin(), allowed.end(), req.method) == allowed.end()) {
      std::string allow;
      for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
      HttpResponse r{405, "application/json", text_of(json{{"error", req.method + " is not allowed on " + std::string(path)}}),
                     {{"Allow", allow}}};
      finish(std::move(r));
      return;
    }
    if (route == Route::health) {
      finish(service_.ready() ? json_response(200, {{"status", "ready"}})
                              : error_response({Code::unavailable, "not ready"}));
      return;
    }
    if (tokens_.enabled()) {
      const Access a = tokens_.check_header(req.authorization);
      if (a == Access::none)
        throw ServiceError(Code::unauthenticated, req.authorization.empty()
                                                      ? "this server needs a token: send 'Authorization: Bearer <token>'"
                                                      : "the token is not valid");
      if (route == Route::put && a != Access::write)
        throw ServiceError(Code::permission_denied, "this token may read but not add memories");
    }
    if (route == Route::metrics) {
      finish({200, "text/plain; version=0.0.4", service_.render_metrics(), {}});
      return;
    }
    if (!service_.ready()) throw ServiceError(Code::unavailable, "the server is not ready");
    service_.admit();
    switch (route) {
      case Route::list: {
        json list = json::array();
        for (const MemoryDescription& d : service_.list()) list.push_back(describe_json(d));
        finish(json_response(200, {{"memories", std::move(list)}}));
        return;
      }
      case Route::info:
        finish(json_response(200, describe_json(service_.info(name))));
        return;
      case Route::put: {
        PutCall call = decode_put(req.content_type, query, req.body);
        call.name = name;
        finish(json_response(201, describe_json(service_.put(call))));
        return;
      }
      case Route::lookup:
      case Route::attend: {
        LookupCall call = decode_lookup(req.content_type, query, req.body);
        call.name = name;
        const bool npy_out = req.accept.find("application/x-npy") != std::string::npos;
        auto answer = [finish, npy_out](Status s, npy::Matrix r) {
          if (!s.ok()) return finish(error_response(s));
          if (!npy_out) return finish({200, "application/json", results_json(r), {}});
          HttpResponse res{200, "application/x-npy", {}, {}};
          npy::encode(r.data.data(), r.rows, r.cols, res.body);
          finish(std::move(res));
        };
        if (route == Route::lookup)
          service_.lookup(std::move(call), std::move(answer));
        else
          service_.attend(std::move(call), std::move(answer));
        return;
      }
      case Route::search: {
        SearchCall call = decode_search(req.content_type, query, req.body);
        service_.search(std::move(call), [finish](Status s, SearchAnswer answer) {
          if (!s.ok()) return finish(error_response(s));
          json results = json::array();
          for (const auto& hits : answer) {
            json list = json::array();
            for (const SearchHit& h : hits) list.push_back({{"name", h.name}, {"score", h.score}});
            results.push_back(std::move(list));
          }
          finish(json_response(200, {{"results", std::move(results)}}));
        });
        return;
      }
      default:  // the no-op route: the transport's own ceiling, for benchmarks
        if (query == "echo=true") {  // the body back: a ceiling for answers as large as requests
          finish({200, req.content_type.empty() ? "application/octet-stream" : req.content_type, std::move(req.body), {}});
          return;
        }
        finish(json_response(200, json::object()));
        return;
    }
  } catch (const ServiceError& e) {
    finish(error_response(e.status()));
  } catch (const std::bad_alloc&) {
    finish(error_response({Code::overloaded, "not enough memory for this request"}));
  } catch (const std::exception& e) {
    finish(error_response({Code::internal, e.what()}));
  }
}

}  // namespace linattn::serve
