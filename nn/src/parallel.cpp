// The worker pool behind parallel_for: threads started once and woken for each job.
#include "bitsim/nn/parallel.hpp"

#include <condition_variable>
#include <thread>
#include <vector>

namespace bitsim::nn::detail {

namespace {

class WorkerPool {
 public:
  ~WorkerPool() {
    {
      const std::lock_guard lock(m_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  void run(int helpers, const std::function<void()>& job) {
    const std::lock_guard turn(run_mutex_);
    {
      const std::lock_guard lock(m_);
      while (int(threads_.size()) < helpers) threads_.emplace_back([this] { loop(); });
      job_ = &job;
      slots_ = helpers;
      running_ = helpers;
      ++generation_;
    }
    wake_.notify_all();
    job();
    std::unique_lock lock(m_);
    done_.wait(lock, [&] { return running_ == 0; });
    job_ = nullptr;
  }

 private:
  void loop() {
    std::uint64_t seen = 0;
    for (;;) {
      const std::function<void()>* job = nullptr;
      {
        std::unique_lock lock(m_);
        // A thread joins each job at most once, and only while the job still has a free slot.
        wake_.wait(lock, [&] { return stop_ || (generation_ != seen && slots_ > 0); });
        if (stop_) return;
        seen = generation_;
        --slots_;
        job = job_;
      }
      (*job)();
      const std::lock_guard lock(m_);
      if (--running_ == 0) done_.notify_one();
    }
  }

  std::mutex run_mutex_;  // one job at a time
  std::mutex m_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  const std::function<void()>* job_ = nullptr;
  std::uint64_t generation_ = 0;
  int slots_ = 0, running_ = 0;
  bool stop_ = false;
};

}  // namespace

void run_on_pool(int helpers, const std::function<void()>& job) {
  static WorkerPool pool;
  pool.run(helpers, job);
}

bool& in_parallel_for() {
  thread_local bool inside = false;
  return inside;
}

}  // namespace bitsim::nn::detail
