// One rank of the data-parallel tests (ranks_test.cpp starts several): joins the run the
// environment describes (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), runs probe_steps on
// its share of the batch and, on rank 0, saves what they returned to the file argv[1].
// Exits 1 with the error on stderr when anything fails.
#include <systemc>

#include <cstdlib>
#include <iostream>

#include "rank_probe.hpp"

// udc_search links the simulator, so SystemC owns the program (as in udc-torch).
int sc_main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: rank_probe OUTPUT.pt (rank, world and store from the environment)\n";
    return 2;
  }
  try {
    torch::set_num_threads(1);
    const std::shared_ptr<udc::search::Ranks> ranks = udc::search::Ranks::from_environment();
    const auto net = udc::search::probe::probe_network();
    const std::vector<torch::Tensor> values = udc::search::probe::probe_steps(*net, ranks.get());
    if (ranks->primary()) torch::save(values, argv[1]);
    ranks->barrier("the end of the probe");
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "rank_probe: " << e.what() << "\n";
    return 1;
  }
}

int main(int argc, char** argv) {
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  return sc_core::sc_elab_and_sim(argc, argv);
}
