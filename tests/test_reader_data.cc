// The reader's data: bAbI, CNN ".question" files and MQAR.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "babi.h"
#include "cnn.h"
#include "cnn_sample.h"
#include "dataset.h"
#include "linattn/core/error.h"
#include "mqar.h"
#include "scratch_dir.h"
#include "vocabulary.h"

namespace linattn::reader {
namespace {
namespace fs = std::filesystem;

const char* kStories =
    "1 Mary moved to the bathroom.\n"
    "2 John went to the hallway.\n"
    "3 Where is Mary? \tbathroom\t1\n"
    "4 Daniel went back to the hallway.\n"
    "5 Where is Daniel?\thallway\t4\n"
    "1 Sandra journeyed to the garden.\n"
    "2 Where is Sandra?\tgarden\t1\n";

template <class F>
void expect_format_error(F f, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "accepted; expected an error with: " << words;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

TEST(Babi, TokenizesAndParsesStories) {
  EXPECT_EQ(tokenize("Where is Mary? "), (std::vector<std::string>{"where", "is", "mary", "?"}));
  const auto ex = parse_babi(kStories, "t.txt");
  ASSERT_EQ(ex.size(), 3u);
  EXPECT_EQ(ex[0].story_id, 0);
  EXPECT_EQ(ex[0].answer, "bathroom");
  EXPECT_EQ(ex[0].question, (std::vector<std::string>{"where", "is", "mary", "?"}));
  EXPECT_EQ(ex[0].story.size(), 12u);  // two statements of 6 tokens
  EXPECT_EQ(ex[0].sentence_ends, (std::vector<int64_t>{6, 12}));
  EXPECT_EQ(ex[0].supporting, (std::vector<int64_t>{0}));
  EXPECT_EQ(ex[1].story.size(), 19u);  // the question line is not part of the story
  EXPECT_EQ(ex[1].supporting, (std::vector<int64_t>{2}));
  EXPECT_EQ(ex[2].story_id, 1);
  EXPECT_EQ(ex[2].story.size(), 6u);
}

TEST(Babi, MalformedLinesNameFileAndLine) {
  expect_format_error([] { parse_babi("1 a.\nx b.\n", "f.txt"); }, "f.txt:2: expected 'N text'");
  expect_format_error([] { parse_babi("1 a.\n3 b.\n", "f.txt"); }, "f.txt:2: line number 3 where 2");
  expect_format_error([] { parse_babi("2 a.\n", "f.txt"); }, "f.txt:1:");
  expect_format_error([] { parse_babi("1 a.\n2 q?\tans\t5\n", "f.txt"); }, "f.txt:2: supporting fact 5");
  expect_format_error([] { parse_babi("1 a.\n2 q?\tans\t2\n", "f.txt"); }, "f.txt:2: supporting fact 2");
  expect_format_error([] { parse_babi("1 a.\n2 q?\t\t1\n", "f.txt"); }, "needs a question and an answer");
}

TEST(Babi, LoadsTasksSplitsByStoryAndFallsBackForTask3) {
  const fs::path root = fs::temp_directory_path() / ("babi_" + std::to_string(::getpid()));
  fs::create_directories(root / "en");
  fs::create_directories(root / "en-10k");
  std::string many;
  for (int s = 0; s < 50; ++s) many += kStories;
  for (const char* dir : {"en", "en-10k"}) {
    std::ofstream(root / dir / "qa1_single-supporting-fact_train.txt") << many;
    std::ofstream(root / dir / "qa1_single-supporting-fact_test.txt") << kStories;
    std::ofstream(root / dir / "qa3_three-supporting-facts_test.txt") << kStories;
  }
  std::ofstream(root / "en" / "qa3_three-supporting-facts_train.txt") << many;
  const BabiTask t = load_babi(root.string(), 1, false, 0.2, 7);
  EXPECT_EQ(t.name, "single-supporting-fact");
  EXPECT_EQ(t.train.size() + t.valid.size(), 150u);
  EXPECT_EQ(t.test.size(), 3u);
  std::set<int64_t> train_stories, valid_stories;
  for (const auto& e : t.train) train_stories.insert(e.story_id);
  for (const auto& e : t.valid) valid_stories.insert(e.story_id);
  EXPECT_EQ(valid_stories.size(), 20u);  // 20% of 100 stories
  for (int64_t s : valid_stories) EXPECT_EQ(train_stories.count(s), 0u) << "story " << s << " on both sides";
  EXPECT_EQ(load_babi(root.string(), 1, false, 0.2, 7).valid.size(), t.valid.size());  // seeded
  const BabiTask t3 = load_babi(root.string(), 3, true);
  ASSERT_EQ(t3.notes.size(), 1u);
  EXPECT_NE(t3.notes[0].find("en-10k has no training file for task 3"), std::string::npos);
  expect_format_error([&] { load_babi(root.string(), 2, false); }, "bAbI task 2 not found");
  expect_format_error([&] { load_babi(root.string(), 21, false); }, "1-20");
  EXPECT_EQ(find_babi_root(root.string()), root.string());
  expect_format_error([] { find_babi_root(std::string("/nonexistent")); }, "no en/ or en-10k/");
  fs::remove_all(root);
}

TEST(Babi, RealTask1HasTheDocumentedShape) {
  const fs::path root = fs::path(LINATTN_SOURCE_DIR) / ".." / "shared" / "data" / "babi";
  if (!fs::is_directory(root / "en")) GTEST_SKIP() << "no bAbI data at " << root;
  const BabiTask t = load_babi(root.string(), 1, false, 0.1, 1);
  EXPECT_EQ(t.train.size() + t.valid.size(), 1000u);
  EXPECT_EQ(t.test.size(), 1000u);
  Vocabulary answers;
  for (const auto& e : t.train) answers.add(e.answer);
  EXPECT_EQ(answers.size(), 2 + 6);  // six rooms
}

TEST(Cnn, ParsesQuestionFilesAndNamesProblems) {
  const std::string good =
      "http://www.cnn.com/x\n\n@entity1 met @entity2 in @entity3 . @entity1 left .\n\n"
      "@placeholder met @entity2\n\n@entity1\n\n@entity1:Alice\n@entity2:Bob\n@entity3:Paris\n";
  const CnnExample ex = parse_cnn_question(good, "a.question");
  EXPECT_EQ(ex.answer, "@entity1");
  EXPECT_EQ(ex.candidates, (std::vector<std::string>{"@entity1", "@entity2", "@entity3"}));
  EXPECT_EQ(ex.entity_names.at("@entity3"), "Paris");
  EXPECT_EQ(ex.query.front(), "@placeholder");
  expect_format_error([] { parse_cnn_question("url\n\nstory\n", "b.question"); }, "b.question:");
  expect_format_error([] { parse_cnn_question("u\n\n@entity1 x\n\nno placeholder\n\n@entity1\n", "c.question"); },
                      "c.question:5: the query has no @placeholder");
  expect_format_error([] { parse_cnn_question("u\n\n@entity1 x\n\n@placeholder\n\n@entity9\n", "d.question"); },
                      "does not occur in the story");
  expect_format_error([] { parse_cnn_question("u\n\n@entity1 x\n\n@placeholder\n\n@entity1\n\nbroken\n", "e.question"); },
                      "e.question:9: expected '@entityN:Name'");
}

// Re-shuffling renames every marker consistently: the text keeps its shape, the answer stays a
// candidate, the names follow their entities, and the new markers fall in [0, range).
TEST(Cnn, ShufflingEntitiesRenamesThemConsistently) {
  const std::string text =
      "u\n\n@entity7 met @entity30 in @entity2 . @entity7 left .\n\n@placeholder met @entity30\n\n@entity7\n\n"
      "@entity7:Alice\n@entity30:Bob\n@entity2:Paris\n@entity99:Nobody\n";
  const CnnExample before = parse_cnn_question(text, "a.question");
  std::set<std::string> drawn;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    CnnExample ex = before;
    const auto rename = shuffle_entities(ex, 5, seed);
    ASSERT_EQ(rename.size(), 3u);
    for (size_t i = 0; i < ex.story.size(); ++i)
      EXPECT_EQ(ex.story[i], rename.count(before.story[i]) ? rename.at(before.story[i]) : before.story[i]);
    EXPECT_EQ(ex.answer, rename.at("@entity7"));
    EXPECT_EQ(ex.story[0], ex.story[6]);  // both mentions of @entity7
    EXPECT_EQ(ex.query[2], rename.at("@entity30"));
    EXPECT_EQ(ex.candidates, (std::vector<std::string>{rename.at("@entity7"), rename.at("@entity30"), rename.at("@entity2")}));
    EXPECT_EQ(ex.entity_names.at(rename.at("@entity30")), "Bob");
    EXPECT_EQ(ex.entity_names.size(), 3u);  // @entity99 is not in the text
    for (const auto& [from, to] : rename) {
      const int id = std::stoi(to.substr(7));
      EXPECT_TRUE(id >= 0 && id < 5) << to;
      drawn.insert(to);
    }
  }
  EXPECT_EQ(drawn.size(), 5u);  // every marker of the range is drawn for some seed
  CnnExample ex = before;
  expect_format_error([&] { shuffle_entities(ex, 2, 0); }, "3 entities, more than the 2");
  EXPECT_EQ(entity_count(before), 3);
}

TEST(Cnn, ReadsTheDeepMindLayout) {
  test::ScratchDir dir("linattn_cnn_data");
  expect_format_error([&] { cnn_question_files(dir.path(), "training"); }, "DIR/questions/{training,validation,test}");
  fs::create_directories(dir("questions/training"));
  expect_format_error([&] { cnn_question_files(dir.path(), "training"); }, "holds no .question files");
  write_cnn_sample(dir.path(), {.train = 30, .valid = 9, .test = 9, .questions_per_document = 3});
  const auto files = cnn_question_files(dir.path(), "training");
  ASSERT_EQ(files.size(), 30u);
  EXPECT_TRUE(std::is_sorted(files.begin(), files.end()));
  EXPECT_EQ(cnn_question_files(dir.path(), "training", 4), std::vector<std::string>(files.begin(), files.begin() + 4));

  const Dataset d = cnn_dataset({.dir = dir.path()}, 1);
  ASSERT_EQ(d.train.size(), 30u);
  ASSERT_EQ(d.valid.size(), 9u);
  ASSERT_EQ(d.test.size(), 9u);
  // Answers are the markers @entity0..R-1 only.
  for (int64_t i = 2; i < d.answers.size(); ++i) EXPECT_EQ(d.answers.token(i), "@entity" + std::to_string(i - 2));
  for (const auto* split : {&d.train, &d.valid, &d.test})
    for (const Example& e : *split) {
      ASSERT_FALSE(e.candidates.empty());
      EXPECT_NE(std::find(e.candidates.begin(), e.candidates.end(), e.answer), e.candidates.end());
      std::set<int64_t> in_story;
      for (int64_t w : e.story)
        if (d.words.token(w).rfind("@entity", 0) == 0) in_story.insert(d.answers.id(d.words.token(w)));
      EXPECT_EQ(in_story, std::set<int64_t>(e.candidates.begin(), e.candidates.end()));
      for (int64_t w : e.question) EXPECT_NE(w, Vocabulary::kUnknown);
    }
  // Validation and test: one renaming and one story id per document; training: one per example.
  for (const auto* split : {&d.valid, &d.test})
    for (size_t i = 0; i < split->size(); i += 3) {
      EXPECT_EQ((*split)[i].story, (*split)[i + 1].story);
      EXPECT_EQ((*split)[i].story_id, (*split)[i + 2].story_id);
      EXPECT_NE((*split)[i].story_id, i + 3 < split->size() ? (*split)[i + 3].story_id : -1);
    }
  int differ = 0;
  for (size_t i = 0; i < d.train.size(); i += 3) differ += d.train[i].story != d.train[i + 1].story;
  EXPECT_GT(differ, 5);
  EXPECT_NE(d.train[0].story_id, d.train[1].story_id);

  // Through given vocabularies, without the training split; --max-examples.
  const Dataset eval = cnn_dataset({.dir = dir.path(), .max_examples = 4, .read_training = false}, 1, &d.words, &d.answers);
  EXPECT_TRUE(eval.train.empty());
  ASSERT_EQ(eval.test.size(), 4u);
  EXPECT_EQ(eval.test[0].story, d.test[0].story);
  EXPECT_EQ(cnn_examples({files[0]}, d.words, d.answers, 1).front().answer >= 2, true);
}

TEST(Mqar, SequencesFollowTheDefinition) {
  const MqarOptions o{.vocab = 8192, .length = 128, .pairs = 8};
  const MqarBatch b = generate_mqar(o, 200, 3);
  for (int64_t e = 0; e < b.examples; ++e) {
    const int64_t* in = &b.inputs[e * o.length];
    const int64_t* tg = &b.targets[e * o.length];
    std::set<int64_t> keys;
    for (int64_t p = 0; p < o.pairs; ++p) {
      EXPECT_GE(in[2 * p], 1);
      EXPECT_LT(in[2 * p], o.vocab / 2);
      EXPECT_GE(in[2 * p + 1], o.vocab / 2);
      EXPECT_LT(in[2 * p + 1], o.vocab);
      keys.insert(in[2 * p]);
    }
    EXPECT_EQ(keys.size(), static_cast<size_t>(o.pairs));  // without replacement
    int64_t queries = 0;
    for (int64_t t = 2 * o.pairs; t < o.length; ++t) {
      if (tg[t] == kIgnore) continue;
      ++queries;
      // The target is the value that followed this key in the prefix.
      for (int64_t p = 0; p < o.pairs; ++p)
        if (in[2 * p] == in[t]) {
          EXPECT_EQ(tg[t], in[2 * p + 1]);
        }
    }
    EXPECT_EQ(queries, o.pairs);  // every key asked once
  }
  EXPECT_EQ(generate_mqar(o, 5, 9).inputs, generate_mqar(o, 5, 9).inputs);
  EXPECT_THROW(generate_mqar({.length = 16, .pairs = 8}, 1, 0), Error);
}

TEST(MqarDataset, EachKeyIsAskedOnceAndAnsweredByItsValue) {
  const Dataset d = mqar_dataset({.pairs = 5, .vocab = 64, .train_sequences = 30, .valid_sequences = 4, .test_sequences = 6}, 2);
  EXPECT_EQ(d.train.size(), 150u);
  EXPECT_EQ(d.valid.size(), 20u);
  EXPECT_EQ(d.test.size(), 30u);
  EXPECT_EQ(d.words.size(), 2 + 63);
  EXPECT_EQ(d.answers.size(), 2 + 32);
  for (const auto* split : {&d.train, &d.test})
    for (size_t i = 0; i < split->size(); ++i) {
      const Example& e = (*split)[i];
      ASSERT_EQ(e.story.size(), 10u);
      ASSERT_EQ(e.question.size(), 1u);
      // The asked key sits at an even position; the answer is the word after it.
      bool found = false;
      for (size_t p = 0; p < 10; p += 2)
        if (e.story[p] == e.question[0]) {
          found = true;
          EXPECT_EQ(d.answers.token(e.answer), d.words.token(e.story[p + 1]));
        }
      EXPECT_TRUE(found);
      EXPECT_GE(e.answer, 2);
    }
  // Questions of one story share it; the five keys of a story are all asked.
  std::set<int64_t> asked;
  for (int i = 0; i < 5; ++i) asked.insert(d.train[static_cast<size_t>(i)].question[0]);
  EXPECT_EQ(asked.size(), 5u);
  EXPECT_EQ(mqar_dataset({.pairs = 5, .vocab = 64, .train_sequences = 3}, 7).train[4].story,
            mqar_dataset({.pairs = 5, .vocab = 64, .train_sequences = 3}, 7).train[4].story);
  EXPECT_THROW(mqar_dataset({.pairs = 40, .vocab = 64}, 1), Error);
  EXPECT_THROW(mqar_dataset({.pairs = 2, .train_sequences = 0}, 1), Error);
}

TEST(BabiDataset, VocabulariesComeFromTrainingOnly) {
  BabiTask task;
  task.train = parse_babi(kStories, "train");
  task.test = parse_babi("1 Bill went to the attic.\n2 Where is Bill?\tattic\t1\n", "test");
  const Dataset d = babi_dataset(task);
  EXPECT_TRUE(d.words.contains("mary"));
  EXPECT_FALSE(d.words.contains("bill"));
  EXPECT_EQ(d.test[0].story[0], Vocabulary::kUnknown);
  EXPECT_EQ(d.test[0].answer, Vocabulary::kUnknown);
  EXPECT_EQ(d.train[1].story.size(), task.train[1].story.size());
  int64_t unknown = 0;
  EXPECT_EQ(to_ids(d.words, {"mary", "zebra"}, &unknown), (std::vector<int64_t>{d.words.id("mary"), Vocabulary::kUnknown}));
  EXPECT_EQ(unknown, 1);
}

}  // namespace
}  // namespace linattn::reader
