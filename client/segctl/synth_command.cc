#include "client/segctl/synth_command.h"

#include <chrono>
#include <cstdint>
#include <string_view>

#include "absl/strings/numbers.h"
#include "server/data/shift.h"
#include "server/data/synthetic.h"

namespace segserve::segctl {
namespace {

constexpr char kUsage[] =
    "usage: segctl synth --out DIR [--n 500] [--size 256] [--seed 1]\n"
    "                    [--shift KIND:LEVEL] [--name NAME] [--threads 2]\n"
    "\n"
    "Writes a synthetic plasmodium (malaria) thin-smear data set to DIR:\n"
    "images/*.png, masks/*.png (0 background, 1 red blood cell, 2 parasite) "
    "and\n"
    "dataset.json with a 70/15/15 train/val/test split. The same flags always "
    "give\n"
    "byte-identical files.\n"
    "\n"
    "  --out DIR        output folder (must not already hold a data set)\n"
    "  --n N            number of images, 1..1000000 (default 500)\n"
    "  --size PX        width and height in pixels, 16..4096 (default 256)\n"
    "  --seed S         random seed, unsigned 64-bit (default 1)\n"
    "  --shift K:L      bake a domain shift into every image: brightness, "
    "contrast or\n"
    "                   saturation at level 0..5, e.g. brightness:3 (default "
    "none)\n"
    "  --name NAME      data-set name in dataset.json (default "
    "plasmodium-synth)\n"
    "  --threads T      generator threads, 1..64 (default 2)\n";

int Usage(std::ostream &err, std::string_view problem) {
  err << "segctl synth: " << problem << "\n\n" << kUsage;
  return 2;
}

}  // namespace

int RunSynthCommand(const std::vector<std::string> &args, std::ostream &out, std::ostream &err) {
  data::SyntheticDatasetOptions options;
  std::string out_dir;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    if (flag == "--help" || flag == "-h") {
      out << kUsage;
      return 0;
    }
    std::string value;
    const size_t eq = flag.find('=');
    if (flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return Usage(err, "missing value for " + flag);
    }
    int number = 0;
    if (flag == "--out") {
      out_dir = value;
    } else if (flag == "--n") {
      if (!absl::SimpleAtoi(value, &number) || number < 1 || number > 1000000) {
        return Usage(err, "--n must be an integer in 1..1000000 (got '" + value + "')");
      }
      options.count = number;
    } else if (flag == "--size") {
      if (!absl::SimpleAtoi(value, &number) || number < 16 || number > 4096) {
        return Usage(err, "--size must be an integer in 16..4096 (got '" + value + "')");
      }
      options.sample.size = number;
      options.sample.cell_radius = std::min(options.sample.cell_radius, number / 2.0);
    } else if (flag == "--seed") {
      uint64_t seed = 0;
      if (!absl::SimpleAtoi(value, &seed)) {
        return Usage(err, "--seed must be an unsigned 64-bit integer (got '" + value + "')");
      }
      options.seed = seed;
    } else if (flag == "--shift") {
      absl::StatusOr<data::Shift> shift = data::ParseShift(value, "--shift");
      if (!shift.ok()) return Usage(err, std::string(shift.status().message()));
      options.shift = *shift;
    } else if (flag == "--name") {
      if (value.empty()) return Usage(err, "--name must not be empty");
      options.name = value;
    } else if (flag == "--threads") {
      if (!absl::SimpleAtoi(value, &number) || number < 1 || number > 64) {
        return Usage(err, "--threads must be an integer in 1..64 (got '" + value + "')");
      }
      options.threads = number;
    } else {
      return Usage(err, "unknown flag " + flag);
    }
  }
  if (out_dir.empty()) return Usage(err, "--out is required");
  const auto start = std::chrono::steady_clock::now();
  const absl::Status status = data::GenerateSyntheticDataset(out_dir, options);
  if (!status.ok()) {
    err << "segctl synth: " << status.message() << "\n";
    return 1;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out << "wrote " << options.count << " images (" << options.sample.size << "x"
      << options.sample.size << ", seed " << options.seed << ", shift "
      << data::ShiftToString(options.shift) << ") to " << out_dir << " in " << seconds << " s\n";
  return 0;
}

}  // namespace segserve::segctl
