using System.Net;
using System.Net.Http.Json;
using System.Text;
using Linq2DbTestKit.AspNetCore;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Async;
using Microsoft.Extensions.DependencyInjection;
using NotesApi.Data;
using NotesApi.Testing;
using NUnit.Framework;

namespace NotesApi.Tests;

/// <summary>
/// The API's requests and the tests' own code run in each test's scope, although the application builds every linq2db
/// context itself: what it commits is visible to the test, and nothing is left after it, checked from outside.
/// </summary>
public sealed class NotesApiTests : DatabaseTest
{
    /// <summary>A prefix of this test's titles and tags: tests run in parallel, and none sees another's rows.</summary>
    readonly string _tag = $"t{Guid.NewGuid():N}"[..12];

    HttpClient? _client;

    HttpClient Api => _client ??= NotesApp.Factory.CreateClient(Scope);

    [TearDown]
    public void DisposeClient() => _client?.Dispose();

    string Name(string suffix) => $"{_tag}-{suffix}";

    async Task<Note> CreateAsync(string title, params string[] tags)
    {
        var response = await Api.PostAsJsonAsync("/api/notes", new { title, tags });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<Note>())!;
    }

    async Task EndScopeAndAssertNothingLeftAsync()
    {
        await Scope.DisposeAsync();
        Assert.That(await NotesApp.CountOutsideAsync("notes", "title", _tag), Is.Zero, "notes of this test remain after its scope ended");
        Assert.That(await NotesApp.CountOutsideAsync("tags", "name", _tag), Is.Zero, "tags of this test remain after its scope ended");
    }

    [Test]
    public async Task A_note_posted_is_found_by_id_and_by_tag_and_gone_after_the_test()
    {
        var created = await CreateAsync(Name("first"), Name("work"), NotesDatabase.DefaultTag);

        var fetched = await Api.GetFromJsonAsync<Note>($"/api/notes/{created.Id}");
        var byTag = await Api.GetFromJsonAsync<Note[]>($"/api/notes?tag={Name("work")}");

        Assert.That(fetched, Is.EqualTo(created).Using<Note>((a, b) => a.Id == b.Id && a.Title == b.Title && a.Tags.SequenceEqual(b.Tags)));
        Assert.That(created.Tags, Is.EqualTo(new[] { NotesDatabase.DefaultTag, Name("work") }));
        Assert.That(byTag!.Select(n => n.Title), Is.EqualTo(new[] { Name("first") }));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task The_tag_seeded_at_start_up_is_there_and_a_note_reuses_it()
    {
        await CreateAsync(Name("seeded"), NotesDatabase.DefaultTag);

        var tags = await Api.GetFromJsonAsync<TagCount[]>("/api/tags");

        Assert.That(tags!.Count(t => t.Name == NotesDatabase.DefaultTag), Is.EqualTo(1), "start-up seeded it once; the note reused it");
        Assert.That(tags!.Single(t => t.Name == NotesDatabase.DefaultTag).Notes, Is.EqualTo(1), "only this test's note, not another test's");
    }

    [Test]
    public async Task A_deleted_note_is_gone_for_the_test_and_a_second_delete_is_404()
    {
        var created = await CreateAsync(Name("doomed"));

        var first = await Api.DeleteAsync($"/api/notes/{created.Id}");
        var second = await Api.DeleteAsync($"/api/notes/{created.Id}");
        var fetched = await Api.GetAsync($"/api/notes/{created.Id}");

        Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        Assert.That(second.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(fetched.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task The_test_reads_with_the_applications_own_context_what_the_api_wrote()
    {
        var created = await CreateAsync(Name("via-api"), Name("shared"));

        // The application's context on linq2db's default configuration, built in test code: it joins the test's scope.
        await using var db = new NotesDb();
        var tag = await db.Tags.SingleAsync(t => t.Name == Name("shared"));

        Assert.That(await db.NoteTags.CountAsync(nt => nt.NoteId == created.Id && nt.TagId == tag.Id), Is.EqualTo(1));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task The_api_reads_what_the_test_wrote_through_the_applications_repository()
    {
        var repository = NotesApp.Factory.Services.GetRequiredService<NoteRepository>();
        var created = await repository.CreateAsync(Name("via-repository"), "body", [Name("direct")], CancellationToken.None);

        var listed = await Api.GetFromJsonAsync<Note[]>($"/api/notes?tag={Name("direct")}");

        Assert.That(listed!.Single().Id, Is.EqualTo(created.Id));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task Concurrent_requests_creating_the_same_new_tag_make_it_once()
    {
        var responses = await Task.WhenAll(Enumerable.Range(1, 5).Select(i =>
            Api.PostAsJsonAsync("/api/notes", new { title = Name($"concurrent-{i}"), tags = new[] { Name("together") } })));

        Assert.That(responses.Select(r => r.StatusCode), Is.All.EqualTo(HttpStatusCode.Created));
        var notes = await Api.GetFromJsonAsync<Note[]>($"/api/notes?tag={Name("together")}");
        Assert.That(notes, Has.Length.EqualTo(5));
        await using var db = new NotesDb();
        Assert.That(await db.Tags.CountAsync(t => t.Name == Name("together")), Is.EqualTo(1), "the requests of one test take turns");
    }

    [TestCase("""{"title": ""}""")]
    [TestCase("""{"title": "   "}""")]
    [TestCase("""{"tags": ["a"]}""")]
    [TestCase("""{"title": "ok", "tags": [""]}""")]
    [TestCase("""{"title": """)]
    public async Task Bad_input_is_400_with_problem_details(string body)
    {
        var response = await Api.PostAsync("/api/notes", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), await response.Content.ReadAsStringAsync());
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
    }

    [Test]
    public async Task A_missing_note_is_404()
    {
        var response = await Api.GetAsync("/api/notes/987654321");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }
}
