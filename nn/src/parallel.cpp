// The worker pool behind parallel_for: threads started once and woken for each job.
#include "bitsim/nn/parallel.hpp"

#include <atomic>
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
      published_.store(generation_, std::memory_order_release);
    }
    wake_.notify_all();
    job();
    spin([&] { return running_.load(std::memory_order_acquire) == 0; });
    std::unique_lock lock(m_);
    done_.wait(lock, [&] { return running_ == 0; });
    job_ = nullptr;
  }

 private:
  // A step's jobs come microseconds apart, less than a sleep and a wake-up through the kernel
  // take: a thread that waits polls for a while first (a few tens of microseconds) and sleeps
  // only after that. Whether it polled or slept, it then takes the lock as before.
  template <class Ready>
  static void spin(Ready ready) {
    for (int i = 0; i < kSpins && !ready(); ++i) pause();
  }
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  void loop() {
    std::uint64_t seen = 0;
    for (;;) {
      const std::function<void()>* job = nullptr;
      spin([&] { return published_.load(std::memory_order_acquire) != seen; });
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
  int slots_ = 0;
  std::atomic<int> running_{0};  // helpers yet to finish the job: changed under m_, polled without it
  bool stop_ = false;
  static constexpr int kSpins = 4000;
  std::atomic<std::uint64_t> published_{0};  // generation_, polled without the lock
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
