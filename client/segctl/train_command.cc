// `segctl submit-train`: one training job, or a sweep over encoders and prune levels.
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/segctl/commands.h"
#include "client/segctl/job_output.h"
#include "client/segctl/table.h"
#include "segserve/v1/training.grpc.pb.h"

namespace segserve::segctl {
namespace {

// A --cross-domain value: KIND:LEVEL (a shift of the training set) or a data set name.
const CLI::Validator& CrossDomainValidator() {
  static const CLI::Validator validator(
      [](std::string& value) -> std::string {
        if (value.find(':') == std::string::npos) return std::string();
        return ShiftValidator()(value);
      },
      "SHIFT|DATASET", "cross_domain");
  return validator;
}

struct Options {
  std::string dataset;
  std::vector<std::string> encoders;
  std::vector<int> prune_levels;
  int epochs = 50;
  int batch_size = 8;
  double lr = 1e-3;
  uint64_t seed = 1;
  std::vector<std::string> cross_domain, susceptibility;
  std::string model_name, alias, pretrained_encoder, device, precision = "fp32";
  int early_stopping = 0, max_steps_per_epoch = 0, priority = 0, crop_size = 0,
      susceptibility_images = 0;
  bool color = false, wait = false, bf16_check = false;
};

v1::TrainSpec ToSpec(const Options& o) {
  v1::TrainSpec spec;
  spec.set_dataset(o.dataset);
  for (const std::string& e : o.encoders.empty() ? std::vector<std::string>{"resnet34"}
                                                 : o.encoders) {
    spec.add_encoders(e == "resnet18" ? v1::ENCODER_RESNET18 : v1::ENCODER_RESNET34);
  }
  for (int level : o.prune_levels.empty() ? std::vector<int>{1} : o.prune_levels) {
    spec.add_prune_levels(level);
  }
  spec.set_epochs(o.epochs);
  spec.set_batch_size(o.batch_size);
  spec.set_seed(o.seed);
  spec.set_early_stopping_patience(o.early_stopping);
  spec.set_max_steps_per_epoch(o.max_steps_per_epoch);
  spec.set_priority(o.priority);
  spec.mutable_augmentation()->set_crop_size(o.crop_size);
  spec.mutable_augmentation()->set_color(o.color);
  spec.set_learning_rate(static_cast<float>(o.lr));
  for (const std::string& text : o.cross_domain) {
    auto* cross = spec.add_cross_domain();
    if (text.find(':') != std::string::npos) {
      *cross->mutable_dataset()->mutable_shift() = ShiftToProto(text);  // validated by CLI11
      cross->set_label(text);
    } else {
      cross->mutable_dataset()->set_name(text);
    }
  }
  spec.set_model_name(o.model_name);
  if (!o.alias.empty()) spec.add_set_aliases(o.alias);
  spec.set_pretrained_encoder(o.pretrained_encoder);
  spec.set_device(o.device);
  spec.set_precision(PrecisionToProto(o.precision));
  spec.set_bf16_check(o.bf16_check);
  if (!o.susceptibility.empty()) {
    for (const std::string& target : o.susceptibility) {
      spec.mutable_susceptibility()->add_targets(target);
    }
    spec.mutable_susceptibility()->set_images(o.susceptibility_images);
  }
  return spec;
}

int Submit(const Options& o, const GlobalOptions& global, std::ostream& out, std::ostream& err) {
  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());
  auto stub = v1::Training::NewStub((*client)->channel());
  auto context = (*client)->NewContext();
  v1::Job job;
  grpc::Status status = stub->SubmitTrain(context.get(), ToSpec(o), &job);
  if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  out << "submitted " << JobKindName(job.kind()) << " " << job.job_id();
  if (job.child_job_ids_size() > 0) out << " with " << job.child_job_ids_size() << " children";
  out << "\n";
  if (!o.wait) return kExitOk;
  auto final_job = WatchJob(**client, job.job_id(), out);
  if (!final_job.ok()) return ReportError(err, final_job.status());
  // Refresh: the terminal event of a sweep carries the table.
  auto get_context = (*client)->NewContext();
  v1::JobRef ref;
  ref.set_job_id(job.job_id());
  v1::Job done;
  if (stub->GetJob(get_context.get(), ref, &done).ok()) PrintJob(out, done, TerminalWidth());
  return done.state() == v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitError;
}

}  // namespace

void AddSubmitTrainCommand(CLI::App& segctl, Invocation& invocation) {
  auto o = std::make_shared<Options>();
  CLI::App* submit = segctl.add_subcommand(
      "submit-train", "submit a training job or a sweep over prune levels and encoders");
  submit->add_option("--dataset", o->dataset, "server-side data set to train on")->required();
  const auto encoder = CLI::IsMember({"resnet18", "resnet34"});
  submit->add_option("--encoder,--encoders", o->encoders,
                     "encoder(s), comma-separated: resnet18, resnet34 (default resnet34)")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->check(encoder);
  submit->add_option("--prune-level,--prune-levels", o->prune_levels,
                     "skip-pruning level(s) 0..4, comma-separated (default 1)")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->check(CLI::Range(0, 4));
  submit->add_option("--epochs", o->epochs, "training epochs")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  submit->add_option("--batch-size", o->batch_size, "images per step")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  submit->add_option("--lr", o->lr, "learning rate")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            double lr = 0;
            return absl::SimpleAtod(value, &lr) && lr > 0 && lr <= 1 ? "" : "must be in (0, 1]";
          },
          "in (0, 1]", "learning_rate"))
      ->capture_default_str();
  submit->add_option("--seed", o->seed, "random seed")->capture_default_str();
  submit->add_option("--cross-domain", o->cross_domain,
                     "evaluate on a shift of the training set (brightness:4, contrast:3, "
                     "saturation:5) or another data set; repeat or comma-separate")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->check(CrossDomainValidator());
  submit->add_option("--model-name", o->model_name, "register the model under this name");
  submit->add_option("--alias", o->alias, "point this alias at the trained model");
  submit->add_option("--pretrained-encoder", o->pretrained_encoder,
                     "start from this imported model's encoder");
  submit->add_option("--early-stopping", o->early_stopping,
                     "stop after N epochs without val IoU gain (0 = off)")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  submit->add_option("--max-steps-per-epoch", o->max_steps_per_epoch, "cap steps (0 = all)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  submit->add_option("--priority", o->priority, "higher runs first")->capture_default_str();
  submit->add_option("--crop-size", o->crop_size,
                     "random crops: 0 or a multiple of 32 in 32..2048")
      ->check(CLI::Range(0, 2048))
      ->capture_default_str();
  submit->add_option("--device", o->device, "cpu, cuda or cuda:N (default: the server's)");
  submit
      ->add_option("--susceptibility", o->susceptibility,
                   "after training, per-layer susceptibility of the model to these shifts "
                   "(kind:level, comma-separated; shown by jobs get)")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->check(ShiftValidator());
  submit
      ->add_option("--susceptibility-images", o->susceptibility_images,
                   "images per set for --susceptibility (default 64)")
      ->check(CLI::Range(2, 1024))
      ->needs("--susceptibility");
  AddPrecisionOptions(submit, o->precision, o->bf16_check);
  submit->add_flag("--color", o->color, "colour augmentation");
  submit->add_flag("--wait", o->wait, "follow the job; print the result (sweep: the table)");
  SetExamples(submit,
              {"segctl submit-train --dataset plasmodium-synth --encoder resnet18 --epochs 20 "
               "--wait",
               "segctl submit-train --dataset smears --encoder resnet34 --prune-levels 0,1,2,3,4 "
               "--epochs 50 --cross-domain brightness:4,contrast:3 --wait"},
              "Several prune levels or encoders submit a sweep (one child job per\n"
              "configuration); with --wait it prints the comparison table.");
  SetAction(submit, invocation,
            [o](const GlobalOptions& global, std::ostream& out, std::ostream& err) {
              return Submit(*o, global, out, err);
            });
}

}  // namespace segserve::segctl
