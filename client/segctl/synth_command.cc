// `segctl synth`: writes a synthetic plasmodium data set locally (no server needed), or
// with --nifti a small synthetic MR set of .nii.gz volumes in nnU-Net raw layout.
#include <chrono>
#include <cstdint>
#include <iostream>

#include "client/segctl/commands.h"
#include "server/data/shift.h"
#include "server/data/synthetic.h"
#include "server/data/synthetic_mr.h"

namespace segserve::segctl {

void AddSynthCommand(CLI::App& segctl, Invocation& invocation) {
  struct Options {
    std::string out;
    data::SyntheticDatasetOptions generator;
    int size = 256;
    std::string shift;
    bool nifti = false;
    int slices = 16;
  };
  auto o = std::make_shared<Options>();
  CLI::App* synth = segctl.add_subcommand("synth", "write a synthetic plasmodium data set locally");
  synth->add_option("--out", o->out, "output folder (must not already hold a data set)")
      ->required();
  synth->add_option("--n", o->generator.count, "number of images")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  synth->add_option("--size", o->size, "width and height in pixels")
      ->check(CLI::Range(16, 4096))
      ->capture_default_str();
  synth->add_option("--seed", o->generator.seed, "random seed, unsigned 64-bit")
      ->capture_default_str();
  synth
      ->add_option("--shift", o->shift,
                   "bake a domain shift into every image: brightness, contrast or saturation "
                   "at level 0..5, e.g. brightness:3")
      ->check(ShiftValidator());
  synth->add_option("--name", o->generator.name, "data-set name in dataset.json")
      ->check(CLI::Validator(
          [](std::string& value) { return value.empty() ? "must not be empty" : ""; }, "NAME",
          "non_empty"))
      ->capture_default_str();
  synth->add_flag("--nifti", o->nifti,
                  "write synthetic MR volumes (.nii.gz, nnU-Net raw layout) instead; --n "
                  "defaults to 4 and --size to 64 then");
  synth->add_option("--slices", o->slices, "with --nifti: slices per volume")
      ->check(CLI::Range(4, 1024))
      ->capture_default_str();
  synth->add_option("--threads", o->generator.threads, "generator threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  SetExamples(synth,
              {"segctl synth --out smears --n 8 --seed 7",
               "segctl synth --out dark --n 500 --size 256 --shift brightness:3 --name dark",
               "segctl synth --nifti --out mr --n 4"},
              "Writes images/*.png, masks/*.png (0 background, 1 red blood cell, 2 parasite)\n"
              "and dataset.json with a 70/15/15 train/val/test split. The same options always\n"
              "give byte-identical files.\n"
              "--nifti writes imagesTr/mr_NNN_0000.nii.gz (float MR-like intensities: an organ\n"
              "and a lesion in a body, bias field, Rician noise), labelsTr/mr_NNN.nii.gz (0\n"
              "background, 1 organ, 2 lesion) and dataset.json.");
  SetAction(synth, invocation,
            [o, synth](const GlobalOptions&, std::ostream& out, std::ostream& err) -> int {
              if (o->nifti) {
                if (!o->shift.empty()) {
                  err << "segctl synth: --shift does not apply to --nifti\n";
                  return kExitUsage;
                }
                const int count = synth->count("--n") > 0 ? o->generator.count : 4;
                const int64_t size = synth->count("--size") > 0 ? o->size : 64;
                data::SyntheticMrOptions mr;
                mr.dims = {size, size, o->slices};
                const absl::Status status =
                    data::WriteSyntheticMrDataset(o->out, count, o->generator.seed, mr);
                if (!status.ok()) {
                  err << "segctl synth: " << status.message() << "\n";
                  return kExitError;
                }
                out << "wrote " << count << " MR volumes (" << size << "x" << size << "x"
                    << o->slices << ", seed " << o->generator.seed << ") to " << o->out << "\n";
                return kExitOk;
              }
              data::SyntheticDatasetOptions options = o->generator;
              options.sample.size = o->size;
              options.sample.cell_radius = std::min(options.sample.cell_radius, o->size / 2.0);
              if (!o->shift.empty()) {
                auto shift = data::ParseShift(o->shift, "--shift");
                if (!shift.ok()) return ReportError(err, shift.status());
                options.shift = *shift;
              }
              const auto start = std::chrono::steady_clock::now();
              const absl::Status status = data::GenerateSyntheticDataset(o->out, options);
              if (!status.ok()) {
                err << "segctl synth: " << status.message() << "\n";
                return kExitError;
              }
              const double seconds =
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
              out << "wrote " << options.count << " images (" << options.sample.size << "x"
                  << options.sample.size << ", seed " << options.seed << ", shift "
                  << data::ShiftToString(options.shift) << ") to " << o->out << " in " << seconds
                  << " s\n";
              return kExitOk;
            });
}

}  // namespace segserve::segctl
