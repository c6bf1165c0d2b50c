#include "server/model/torch_pickle.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/torch_zip.h"

namespace segserve::model {
namespace {

struct PyValue;
using PyPtr = std::shared_ptr<PyValue>;

// The Python values a state-dict pickle can hold.
struct PyValue {
  enum Kind { kMark, kNone, kBool, kInt, kFloat, kStr, kTuple, kList, kDict, kGlobal, kTensor };
  Kind kind = kNone;
  int64_t i = 0;                                 // kBool, kInt
  double f = 0;                                  // kFloat
  std::string s;                                 // kStr, kGlobal ("module.name")
  std::vector<PyPtr> items;                      // kTuple, kList
  std::vector<std::pair<PyPtr, PyPtr>> entries;  // kDict
  torch::Tensor tensor;                          // kTensor (storages are 1-D tensors)
};

PyPtr Make(PyValue::Kind kind) {
  auto v = std::make_shared<PyValue>();
  v->kind = kind;
  return v;
}

const std::map<std::string, torch::ScalarType>& StorageTypes() {
  static const auto* types = new std::map<std::string, torch::ScalarType>{
      {"torch.FloatStorage", torch::kFloat32}, {"torch.DoubleStorage", torch::kFloat64},
      {"torch.HalfStorage", torch::kFloat16},  {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},    {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},   {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},    {"torch.BoolStorage", torch::kBool}};
  return *types;
}

class Unpickler {
 public:
  Unpickler(std::string_view pickle, const TorchZipArchive& archive)
      : p_(pickle), archive_(archive) {}

  absl::StatusOr<PyPtr> Run() {
    while (pos_ < p_.size()) {
      const uint8_t op = static_cast<uint8_t>(p_[pos_++]);
      if (op == '.') {  // STOP
        if (stack_.size() != 1) return Error("unbalanced stack at STOP");
        return stack_.back();
      }
      RETURN_IF_ERROR(Step(op));
    }
    return Error("pickle ends without STOP");
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("pickle byte ", pos_, ": ", std::string(what)));
  }

  absl::StatusOr<std::string> Bytes(size_t n) {
    if (n > p_.size() - pos_) return Error("truncated");
    std::string out(p_.substr(pos_, n));
    pos_ += n;
    return out;
  }
  absl::StatusOr<uint64_t> Uint(size_t n) {
    ASSIGN_OR_RETURN(std::string b, Bytes(n));
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;) v = (v << 8) | static_cast<uint8_t>(b[k]);
    return v;
  }
  absl::StatusOr<std::string> Line() {
    const size_t nl = p_.find('\n', pos_);
    if (nl == std::string::npos) return Error("truncated GLOBAL");
    std::string out(p_.substr(pos_, nl - pos_));
    pos_ = nl + 1;
    return out;
  }
  absl::StatusOr<PyPtr> Pop() {
    if (stack_.empty() || stack_.back()->kind == PyValue::kMark) return Error("stack underflow");
    PyPtr v = stack_.back();
    stack_.pop_back();
    return v;
  }
  absl::StatusOr<std::vector<PyPtr>> PopToMark() {
    std::vector<PyPtr> items;
    while (!stack_.empty() && stack_.back()->kind != PyValue::kMark) {
      items.insert(items.begin(), stack_.back());
      stack_.pop_back();
    }
    if (stack_.empty()) return Error("MARK missing");
    stack_.pop_back();
    return items;
  }
  absl::Status PushScalar(PyValue::Kind kind, int64_t i) {
    PyPtr v = Make(kind);
    v->i = i;
    stack_.push_back(v);
    return absl::OkStatus();
  }
  absl::Status PushStr(std::string s) {
    PyPtr v = Make(PyValue::kStr);
    v->s = std::move(s);
    stack_.push_back(v);
    return absl::OkStatus();
  }
  absl::Status PushTuple(std::vector<PyPtr> items) {
    PyPtr v = Make(PyValue::kTuple);
    v->items = std::move(items);
    stack_.push_back(v);
    return absl::OkStatus();
  }
  absl::Status SetItems(const std::vector<PyPtr>& kv) {
    if (kv.size() % 2 != 0) return Error("odd SETITEMS");
    if (stack_.empty() || stack_.back()->kind != PyValue::kDict)
      return Error("SETITEMS on non-dict");
    for (size_t k = 0; k < kv.size(); k += 2) stack_.back()->entries.emplace_back(kv[k], kv[k + 1]);
    return absl::OkStatus();
  }
  absl::Status Put(uint64_t id) {
    if (stack_.empty()) return Error("PUT on empty stack");
    memo_[id] = stack_.back();
    return absl::OkStatus();
  }
  absl::Status Get(uint64_t id) {
    auto it = memo_.find(id);
    if (it == memo_.end()) return Error("unknown memo id");
    stack_.push_back(it->second);
    return absl::OkStatus();
  }

  absl::Status Step(uint8_t op);
  absl::StatusOr<PyPtr> Reduce(const PyValue& callable, const PyValue& args);
  absl::StatusOr<PyPtr> LoadStorage(const PyValue& pid);

  std::string_view p_;
  const TorchZipArchive& archive_;
  size_t pos_ = 0;
  std::vector<PyPtr> stack_;
  std::map<uint64_t, PyPtr> memo_;
  std::map<std::string, torch::Tensor> storages_;
};

absl::Status Unpickler::Step(uint8_t op) {
  switch (op) {
    case 0x80:
      return Bytes(1).status();  // PROTO
    case 0x95:
      return Bytes(8).status();  // FRAME
    case '(':
      stack_.push_back(Make(PyValue::kMark));
      return absl::OkStatus();
    case '0':
      return Pop().status();  // POP
    case '1':
      return PopToMark().status();  // POP_MARK
    case '2': {                     // DUP
      ASSIGN_OR_RETURN(PyPtr v, Pop());
      stack_.push_back(v);
      stack_.push_back(v);
      return absl::OkStatus();
    }
    case 'N':
      stack_.push_back(Make(PyValue::kNone));
      return absl::OkStatus();
    case 0x88:
      return PushScalar(PyValue::kBool, 1);
    case 0x89:
      return PushScalar(PyValue::kBool, 0);
    case 'K': {
      ASSIGN_OR_RETURN(uint64_t v, Uint(1));
      return PushScalar(PyValue::kInt, v);
    }
    case 'M': {
      ASSIGN_OR_RETURN(uint64_t v, Uint(2));
      return PushScalar(PyValue::kInt, v);
    }
    case 'J': {
      ASSIGN_OR_RETURN(uint64_t v, Uint(4));
      return PushScalar(PyValue::kInt, static_cast<int32_t>(static_cast<uint32_t>(v)));
    }
    case 0x8a: {  // LONG1: little-endian two's complement
      ASSIGN_OR_RETURN(uint64_t n, Uint(1));
      if (n > 8) return Error("integer too large");
      ASSIGN_OR_RETURN(uint64_t v, Uint(n));
      if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);
      return PushScalar(PyValue::kInt, static_cast<int64_t>(v));
    }
    case 'G': {  // BINFLOAT: big-endian double
      ASSIGN_OR_RETURN(std::string b, Bytes(8));
      uint64_t bits = 0;
      for (char c : b) bits = (bits << 8) | static_cast<uint8_t>(c);
      PyPtr v = Make(PyValue::kFloat);
      std::memcpy(&v->f, &bits, 8);
      stack_.push_back(v);
      return absl::OkStatus();
    }
    case 'X':
    case 'T':
    case 'B': {  // BINUNICODE, BINSTRING, BINBYTES (4-byte length)
      ASSIGN_OR_RETURN(uint64_t n, Uint(4));
      ASSIGN_OR_RETURN(std::string s, Bytes(n));
      return PushStr(std::move(s));
    }
    case 0x8c:
    case 'U':
    case 'C': {  // SHORT_BINUNICODE, SHORT_BINSTRING, SHORT_BINBYTES
      ASSIGN_OR_RETURN(uint64_t n, Uint(1));
      ASSIGN_OR_RETURN(std::string s, Bytes(n));
      return PushStr(std::move(s));
    }
    case ')':
      return PushTuple({});
    case 't': {
      ASSIGN_OR_RETURN(auto items, PopToMark());
      return PushTuple(std::move(items));
    }
    case 0x85:
    case 0x86:
    case 0x87: {  // TUPLE1..3
      std::vector<PyPtr> items(op - 0x84);
      for (size_t k = items.size(); k-- > 0;) {
        ASSIGN_OR_RETURN(items[k], Pop());
      }
      return PushTuple(std::move(items));
    }
    case ']':
      stack_.push_back(Make(PyValue::kList));
      return absl::OkStatus();
    case 'l': {
      ASSIGN_OR_RETURN(auto items, PopToMark());
      PyPtr v = Make(PyValue::kList);
      v->items = std::move(items);
      stack_.push_back(v);
      return absl::OkStatus();
    }
    case 'a':
    case 'e': {  // APPEND, APPENDS
      std::vector<PyPtr> items;
      if (op == 'a') {
        ASSIGN_OR_RETURN(PyPtr v, Pop());
        items.push_back(v);
      } else {
        ASSIGN_OR_RETURN(items, PopToMark());
      }
      if (stack_.empty() || stack_.back()->kind != PyValue::kList)
        return Error("APPEND to non-list");
      for (auto& v : items) stack_.back()->items.push_back(v);
      return absl::OkStatus();
    }
    case '}':
      stack_.push_back(Make(PyValue::kDict));
      return absl::OkStatus();
    case 'd': {
      ASSIGN_OR_RETURN(auto kv, PopToMark());
      stack_.push_back(Make(PyValue::kDict));
      return SetItems(kv);
    }
    case 's': {
      ASSIGN_OR_RETURN(PyPtr value, Pop());
      ASSIGN_OR_RETURN(PyPtr key, Pop());
      return SetItems({key, value});
    }
    case 'u': {
      ASSIGN_OR_RETURN(auto kv, PopToMark());
      return SetItems(kv);
    }
    case 'c': {  // GLOBAL
      ASSIGN_OR_RETURN(std::string module, Line());
      ASSIGN_OR_RETURN(std::string name, Line());
      PyPtr v = Make(PyValue::kGlobal);
      v->s = module + "." + name;
      stack_.push_back(v);
      return absl::OkStatus();
    }
    case 0x93: {  // STACK_GLOBAL
      ASSIGN_OR_RETURN(PyPtr name, Pop());
      ASSIGN_OR_RETURN(PyPtr module, Pop());
      PyPtr v = Make(PyValue::kGlobal);
      v->s = module->s + "." + name->s;
      stack_.push_back(v);
      return absl::OkStatus();
    }
    case 'R': {  // REDUCE
      ASSIGN_OR_RETURN(PyPtr args, Pop());
      ASSIGN_OR_RETURN(PyPtr callable, Pop());
      ASSIGN_OR_RETURN(PyPtr result, Reduce(*callable, *args));
      stack_.push_back(result);
      return absl::OkStatus();
    }
    case 0x81: {  // NEWOBJ: a class instance (e.g. a whole pickled nn.Module)
      ASSIGN_OR_RETURN(PyPtr args, Pop());
      ASSIGN_OR_RETURN(PyPtr cls, Pop());
      return Error(absl::StrCat("unsupported Python class ", cls->s,
                                " (only plain dicts of tensors can be read)"));
    }
    case 'b':
      return Pop().status();  // BUILD: state ignored (OrderedDict._metadata)
    case 'Q': {               // BINPERSID
      ASSIGN_OR_RETURN(PyPtr pid, Pop());
      ASSIGN_OR_RETURN(PyPtr storage, LoadStorage(*pid));
      stack_.push_back(storage);
      return absl::OkStatus();
    }
    case 'q': {
      ASSIGN_OR_RETURN(uint64_t id, Uint(1));
      return Put(id);
    }
    case 'r': {
      ASSIGN_OR_RETURN(uint64_t id, Uint(4));
      return Put(id);
    }
    case 0x94:
      return Put(memo_.size());  // MEMOIZE
    case 'h': {
      ASSIGN_OR_RETURN(uint64_t id, Uint(1));
      return Get(id);
    }
    case 'j': {
      ASSIGN_OR_RETURN(uint64_t id, Uint(4));
      return Get(id);
    }
    default:
      return Error(absl::StrCat("unsupported opcode 0x", absl::Hex(op)));
  }
}

absl::StatusOr<std::vector<int64_t>> IntTuple(const PyValue& v) {
  if (v.kind != PyValue::kTuple) return absl::InvalidArgumentError("expected a tuple of ints");
  std::vector<int64_t> out;
  for (const auto& item : v.items) {
    if (item->kind != PyValue::kInt) return absl::InvalidArgumentError("expected a tuple of ints");
    out.push_back(item->i);
  }
  return out;
}

absl::StatusOr<PyPtr> Unpickler::Reduce(const PyValue& callable, const PyValue& args) {
  if (callable.kind != PyValue::kGlobal || args.kind != PyValue::kTuple) {
    return Error("REDUCE of a non-global");
  }
  const std::string& name = callable.s;
  const auto& a = args.items;
  if (name == "collections.OrderedDict" && a.empty()) return Make(PyValue::kDict);
  if ((name == "torch._utils._rebuild_parameter" || name == "torch.jit._pickle.restore_type_tag") &&
      !a.empty()) {
    return a[0];
  }
  if (name == "torch._utils._rebuild_tensor_v2" && a.size() >= 4 &&
      a[0]->kind == PyValue::kTensor && a[1]->kind == PyValue::kInt) {
    ASSIGN_OR_RETURN(std::vector<int64_t> size, IntTuple(*a[2]));
    ASSIGN_OR_RETURN(std::vector<int64_t> stride, IntTuple(*a[3]));
    const torch::Tensor& storage = a[0]->tensor;
    int64_t extent = 1;  // one past the last element touched
    for (size_t k = 0; k < size.size() && k < stride.size(); ++k) {
      if (size[k] == 0) extent = 0;
    }
    if (extent > 0) {
      for (size_t k = 0; k < size.size() && k < stride.size(); ++k) {
        if (size[k] < 0 || stride[k] < 0) return Error("negative size or stride");
        extent += (size[k] - 1) * stride[k];
      }
    }
    if (size.size() != stride.size() || a[1]->i < 0 || a[1]->i + extent > storage.numel()) {
      return Error("tensor outside its storage");
    }
    PyPtr v = Make(PyValue::kTensor);
    v->tensor = storage.as_strided(size, stride, a[1]->i);
    return v;
  }
  return Error(absl::StrCat("unsupported Python callable ", name,
                            " (only plain dicts of tensors can be read)"));
}

absl::StatusOr<PyPtr> Unpickler::LoadStorage(const PyValue& pid) {
  if (pid.kind != PyValue::kTuple || pid.items.size() < 5 || pid.items[0]->s != "storage" ||
      pid.items[1]->kind != PyValue::kGlobal || pid.items[2]->kind != PyValue::kStr ||
      pid.items[4]->kind != PyValue::kInt) {
    return Error("unsupported persistent id (expected a tensor storage)");
  }
  auto type = StorageTypes().find(pid.items[1]->s);
  if (type == StorageTypes().end()) {
    return Error(absl::StrCat("unsupported storage type ", pid.items[1]->s));
  }
  const std::string& key = pid.items[2]->s;
  const int64_t numel = pid.items[4]->i;
  PyPtr v = Make(PyValue::kTensor);
  auto cached = storages_.find(key);
  if (cached != storages_.end()) {
    v->tensor = cached->second;
    return v;
  }
  const std::string record = "data/" + key;
  absl::StatusOr<std::string_view> data = archive_.Record(record);
  if (absl::IsNotFound(data.status())) {
    return Error(absl::StrCat("archive lacks record ", record));
  }
  if (!data.ok()) return data.status();
  const size_t want = static_cast<size_t>(numel) * c10::elementSize(type->second);
  if (numel < 0 || data->size() < want) {
    return Error(absl::StrCat("record ", record, " too short"));
  }
  torch::Tensor storage = torch::empty({numel}, torch::TensorOptions().dtype(type->second));
  if (want > 0) std::memcpy(storage.data_ptr(), data->data(), want);
  storages_[key] = storage;
  v->tensor = storage;
  return v;
}

}  // namespace

absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> ParseTorchSaveTensorDict(
    const std::string& bytes) {
  if (bytes.size() < 4 || bytes.compare(0, 2, "PK") != 0) {
    return absl::InvalidArgumentError(
        "not a torch.save zip archive (legacy non-zip torch.save files are not supported; "
        "re-save with PyTorch >= 1.6 defaults)");
  }
  ASSIGN_OR_RETURN(TorchZipArchive archive, TorchZipArchive::Open(bytes));
  absl::StatusOr<std::string_view> pickle = archive.Record("data.pkl");
  if (!pickle.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("not a readable torch.save archive: ",
                                                   pickle.status().message()));
  }
  Unpickler unpickler(*pickle, archive);
  ASSIGN_OR_RETURN(PyPtr root, unpickler.Run());
  if (root->kind != PyValue::kDict) {
    return absl::InvalidArgumentError("torch.save file must hold a dict of tensors");
  }
  std::vector<std::pair<std::string, torch::Tensor>> result;
  for (const auto& [key, value] : root->entries) {
    if (key->kind != PyValue::kStr) {
      return absl::InvalidArgumentError("torch.save dict keys must be strings");
    }
    if (value->kind != PyValue::kTensor) {
      return absl::InvalidArgumentError(
          absl::StrCat("torch.save dict entry \"", key->s,
                       "\" is not a tensor (a training checkpoint? save model.state_dict())"));
    }
    result.emplace_back(key->s, value->tensor);
  }
  return result;
}

}  // namespace segserve::model
